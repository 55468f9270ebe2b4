package handlers

import (
	"errors"
	"io"
	"sync"
)

// Budget bounds the bytes held by webhook bodies that are not yet verified,
// across all requests: anyone can send a body, and until its signature is
// checked it is only a cost. A body takes budget as its bytes arrive (not
// what Content-Length promises), and gives it back once verified or
// refused. Bodies past SmallBody may hold at most half the budget, so large
// uploads cannot starve Seam's events, which are a few KiB.
type Budget struct {
	mu        sync.Mutex
	max, used int64
	large     int64
	onChange  func(used int64)
}

// SmallBody is the size up to which a body draws on the whole budget.
const SmallBody = 64 << 10

// errBudget means the budget is spent: the request is answered 503.
var errBudget = errors.New("too many unverified webhook bodies in flight")

// NewBudget returns a Budget of max bytes. onChange, when set, is told the
// bytes held after each change (a gauge).
func NewBudget(max int64, onChange func(used int64)) *Budget {
	return &Budget{max: max, onChange: onChange}
}

func (b *Budget) take(n int64, large bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max || (large && b.large+n > b.max/2) {
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

// readBody reads up to limit+1 bytes of r, growing its buffer as bytes
// arrive and taking budget for each growth. declared (Content-Length, or
// -1) only sizes the first read, up to SmallBody.
func (b *Budget) readBody(r io.Reader, declared int64, limit int) ([]byte, *held, error) {
	h := &held{b: b}
	first := int64(4 << 10)
	if declared > 0 {
		first = min(declared+1, SmallBody)
	}
	grow := func(buf []byte, to int64) ([]byte, error) {
		n := to - int64(cap(buf))
		large := to > SmallBody
		if b != nil && !b.take(n, large) {
			return buf, errBudget
		}
		h.total += n
		if large {
			h.large += n
		}
		nb := make([]byte, len(buf), to)
		copy(nb, buf)
		return nb, nil
	}
	buf, err := grow(nil, first)
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
