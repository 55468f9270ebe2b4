package postgres

import (
	"testing"

	"github.com/codewatch/codewatch/datakeys"
	"github.com/codewatch/codewatch/lifecycle"
	"github.com/codewatch/codewatch/seamevent"
)

// BenchmarkPrepare is the CPU encryption adds to one webhook on its own
// goroutine (seal the body; for an event with a PIN, hash it): compare with
// the service's CPU per event in make bench (150-250 µs on the 2-core
// machine of docs/operations.md).
func BenchmarkPrepare(b *testing.B) {
	entry, err := datakeys.Generate("bench")
	if err != nil {
		b.Fatal(err)
	}
	keys, err := datakeys.Parse(entry)
	if err != nil {
		b.Fatal(err)
	}
	s := &Store{cfg: Config{Keys: keys}}
	for _, typ := range []string{lifecycle.TypeSetOnDevice, lifecycle.TypeRemovedFromDevice, "access_code.delay_in_removing_from_device"} {
		body, err := seamevent.Build(typ, seamevent.Options{AccessCodeID: seamevent.NewID()})
		if err != nil {
			b.Fatal(err)
		}
		p, err := lifecycle.Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(typ, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := &request{d: lifecycle.Delivery{MessageID: "msg_2Z8kqWJZ4T7mP0aB3cD5eF6gH7i", Body: body}, parsed: p}
				s.prepare(r)
			}
		})
	}
}
