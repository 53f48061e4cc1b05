package dedup

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// landings is the window's memory: a FIFO ring of landings (oldest at head)
// with a hash index from key to ring position.
//
// Hand-written instead of a Go map from key to position because the window
// is the bridge's largest live structure and churns constantly: a map under
// that churn settled at about 70 bytes per entry (tombstones and growth),
// while an open-addressing index of 4-byte positions at a load of at most a
// half costs 8, so an entry is about 34 bytes with its ring slot (3.4 MB for
// the default 100 000). Keys are already uniform (SHA-256), so their first
// bytes are the hash. Linear probing with backward-shift deletion keeps every
// lookup correct without tombstones.
type landings struct {
	ring  []slot
	head  int
	n     int
	index []uint32 // ring position + 1; 0 is an empty cell
	mask  uint64
}

// slot is one landing: the ID's key and when it landed.
type slot struct {
	k  key
	at time.Duration // since Sink.epoch, on the monotonic clock
}

// find returns k's latest landing.
func (l *landings) find(k key) (slot, bool) {
	if l.index == nil {
		return slot{}, false
	}
	for i := home(k) & l.mask; ; i = (i + 1) & l.mask {
		e := l.index[i]
		if e == 0 {
			return slot{}, false
		}
		if l.ring[e-1].k == k {
			return l.ring[e-1], true
		}
	}
}

// push appends a landing, growing the ring by doubling up to limit slots;
// the caller evicts before the ring would need more.
func (l *landings) push(sl slot, limit int) {
	if l.n == len(l.ring) {
		l.grow(min(max(2*len(l.ring), 64), limit))
	}
	pos := (l.head + l.n) % len(l.ring)
	l.ring[pos] = sl
	l.n++
	l.point(sl.k, pos)
}

// popOldest removes the landing at the head and returns it. Its index entry
// goes too, unless the same key landed again since (the entry then points
// to the newer slot).
func (l *landings) popOldest() slot {
	pos := l.head
	sl := l.ring[pos]
	l.head = (l.head + 1) % len(l.ring)
	l.n--
	l.unpoint(sl.k, pos)
	return sl
}

func (l *landings) oldest() slot { return l.ring[l.head] }

// grow moves the landings to a ring of size slots and rebuilds the index
// for it; oldest first, so a key that landed twice ends up pointing to its
// newest slot.
func (l *landings) grow(size int) {
	ring := make([]slot, size)
	for i := range l.n {
		ring[i] = l.ring[(l.head+i)%len(l.ring)]
	}
	cells := 1 << bits.Len(uint(2*size-1)) // a power of two, at least 2*size
	l.ring, l.head = ring, 0
	l.index, l.mask = make([]uint32, cells), uint64(cells-1)
	for i := range l.n {
		l.point(l.ring[i].k, i)
	}
}

// point makes k's index entry point to pos, adding it if k has none.
func (l *landings) point(k key, pos int) {
	i := home(k) & l.mask
	for ; l.index[i] != 0; i = (i + 1) & l.mask {
		if l.ring[l.index[i]-1].k == k {
			break
		}
	}
	l.index[i] = uint32(pos + 1)
}

// unpoint removes k's index entry if it points to pos, shifting later
// entries of the probe sequence back into the gap.
func (l *landings) unpoint(k key, pos int) {
	i := home(k) & l.mask
	for ; l.index[i] != 0; i = (i + 1) & l.mask {
		if l.ring[l.index[i]-1].k == k {
			break
		}
	}
	if l.index[i] != uint32(pos+1) {
		return
	}
	for j := (i + 1) & l.mask; l.index[j] != 0; j = (j + 1) & l.mask {
		// The entry at j may move to the gap at i if its home cell is not
		// in the cyclic range (i, j].
		h := home(l.ring[l.index[j]-1].k) & l.mask
		if (j-h)&l.mask >= (j-i)&l.mask {
			l.index[i] = l.index[j]
			i = j
		}
	}
	l.index[i] = 0
}

func home(k key) uint64 { return binary.LittleEndian.Uint64(k[:8]) }
