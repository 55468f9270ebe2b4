package handlers

import (
	"errors"
	"io"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Budget bounds the bytes held by webhook bodies that are not yet verified,
// across all requests: anyone can send a body, and until its signature is
// checked it is only a cost. A body takes budget before its bytes are read
// into memory and gives it back once verified or refused; a body that finds
// the budget spent is answered 503 without being read. Bodies past SmallBody
// may hold at most an eighth of the budget at once and take a quarter of it
// per second, so large uploads cannot starve Seam's events (a few KiB) of
// memory or CPU.
type Budget struct {
	mu        sync.Mutex
	max, used int64
	large     int64
	onChange  func(used int64)
	// largeRate bounds the bytes of large bodies read and checked per
	// second: checking a signature costs CPU in proportion to the body, and
	// forged megabytes must not take the CPU Seam's events need.
	largeRate *rate.Limiter
}

// SmallBody is the size up to which a body draws on the whole budget.
const SmallBody = 64 << 10

// errBudget means the budget is spent: the request is answered 503.
var errBudget = errors.New("too many unverified webhook bodies in flight")

// NewBudget returns a Budget of max bytes. Large bodies may hold an eighth
// of it at once, and a quarter of it per second. onChange, when set, is told
// the bytes held after each change (a gauge).
func NewBudget(max int64, onChange func(used int64)) *Budget {
	return &Budget{max: max, onChange: onChange,
		largeRate: rate.NewLimiter(rate.Limit(max/4), int(max/4))}
}

func (b *Budget) take(n int64, large bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max || (large && b.large+n > b.max/8) {
		return false
	}
	if large && !b.largeRate.AllowN(time.Now(), int(n)) {
		return false
	}
	b.used += n
	if large {
		b.large += n
	}
	if b.onChange != nil {
		b.onChange(b.used)
	}
	return true
}

func (b *Budget) give(n, large int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.large -= large
	if b.onChange != nil {
		b.onChange(b.used)
	}
}

// held is what one body holds of a Budget.
type held struct {
	b            *Budget
	total, large int64
}

func (h *held) release() {
	if h.b != nil && h.total > 0 {
		h.b.give(h.total, h.large)
		h.total, h.large = 0, 0
	}
}

// readBody reads up to limit+1 bytes of r, taking budget for what it holds.
// A body that declares its length (Content-Length, at most limit) takes
// budget for all of it and is read into one buffer of that size: no copies,
// no garbage. A body of unknown length grows its buffer as bytes arrive,
// taking budget for each growth. A body over SmallBody draws on the large
// share from its first byte, so that large uploads cannot crowd small ones
// out of the small share either.
func (b *Budget) readBody(r io.Reader, declared int64, limit int) ([]byte, *held, error) {
	h := &held{b: b}
	take := func(n int64, large bool) error {
		if b != nil && !b.take(n, large) {
			return errBudget
		}
		h.total += n
		if large {
			h.large += n
		}
		return nil
	}
	if declared >= 0 && declared <= int64(limit) {
		if err := take(declared, declared > SmallBody); err != nil {
			return nil, h, err
		}
		buf := make([]byte, declared)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, h, err
		}
		// Nothing may follow (net/http enforces Content-Length; a reader
		// that does not is read to its end).
		var one [1]byte
		if n, _ := r.Read(one[:]); n > 0 {
			return append(buf, one[0]), h, nil
		}
		return buf, h, nil
	}
	grow := func(buf []byte, to int64) ([]byte, error) {
		if err := take(to-int64(cap(buf)), declared > SmallBody || to > SmallBody); err != nil {
			return buf, err
		}
		nb := make([]byte, len(buf), to)
		copy(nb, buf)
		return nb, nil
	}
	buf, err := grow(nil, 4<<10)
	if err != nil {
		return nil, h, err
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, h, nil
			}
			buf, err = grow(buf, min(int64(cap(buf))*2, int64(limit)+1))
			if err != nil {
				return nil, h, err
			}
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, h, nil
		}
		if err != nil {
			return nil, h, err
		}
	}
}
