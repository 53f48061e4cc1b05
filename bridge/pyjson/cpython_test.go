package pyjson_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/senfenico-bridge/senfenico-bridge/bridge/pyjson"
)

// bodyGen writes random JSON-ish text that leans on every rule CPython has:
// escapes, surrogates raw and escaped, duplicate keys, number edges, literals,
// and random damage.
type bodyGen struct{ r *rand.Rand }

func (g bodyGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g bodyGen) ws() string {
	if g.r.IntN(3) > 0 {
		return ""
	}
	var b strings.Builder
	for range 1 + g.r.IntN(3) {
		b.WriteByte(" \t\n\r"[g.r.IntN(4)])
	}
	return b.String()
}

func (g bodyGen) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}

func (g bodyGen) number() string {
	s := g.pick("", "", "-")
	switch g.r.IntN(5) {
	case 0:
		s += "0"
	case 1:
		s += strconv.Itoa(1 + g.r.IntN(9))
	case 2:
		s += strconv.Itoa(1+g.r.IntN(9)) + g.digits(g.r.IntN(8))
	default:
		s += strconv.Itoa(1+g.r.IntN(9)) + g.digits(14+g.r.IntN(12))
	}
	if g.r.IntN(2) == 0 {
		s += "." + g.digits(1+g.r.IntN(18))
	}
	if g.r.IntN(5) < 2 {
		s += g.pick("e", "E") + g.pick("", "+", "-") +
			g.pick("0", "4", "5", "15", "16", "17", "22", "23", "300", "307", "308", "309", "324", "330", strconv.Itoa(g.r.IntN(40)))
	}
	return s
}

func (g bodyGen) char() string {
	switch k := g.r.IntN(20); {
	case k < 9:
		return g.pick("a", "z", " ", "A", "0", "/", ":", "-", "{", "]", ",")
	case k < 11:
		return g.pick(`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`)
	case k < 13:
		cp := []int{g.r.IntN(0x80), 0x80 + g.r.IntN(0xff80), 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd800 + g.r.IntN(0x800)}[g.r.IntN(7)]
		h := fmt.Sprintf("%04x", cp)
		if g.r.IntN(3) == 0 {
			h = strings.ToUpper(h)
		}
		return `\u` + h
	case k < 14:
		return fmt.Sprintf(`\u%04x\u%04X`, 0xd800+g.r.IntN(0x400), 0xdc00+g.r.IntN(0x400))
	case k < 17:
		return string([]rune{0x7f, 0xe9, 0x20ac, 0xfeff, 0xffff, 0x1f600, 0x10ffff, 0xa0 + rune(g.r.IntN(0xd700))}[g.r.IntN(8)])
	case k < 19:
		r := 0xd800 + g.r.IntN(0x800) // a raw surrogate, as 'surrogatepass' encodes it
		return string([]byte{0xe0 | byte(r>>12), 0x80 | byte(r>>6)&0x3f, 0x80 | byte(r)&0x3f})
	default:
		return string(rune(0x10000 + g.r.IntN(0x100000)))
	}
}

func (g bodyGen) str(keys bool) string {
	if keys && g.r.IntN(5) < 3 {
		return g.pick(`"a"`, `"\u0061"`, `"b"`, `"\ud83d\ude00"`, "\"\U0001F600\"", "\"\xed\xa0\xbd\xed\xb8\x80\"", `"\ud83d`+"\xed\xb8\x80\"", `""`)
	}
	var b strings.Builder
	b.WriteByte('"')
	for range g.r.IntN(8) {
		b.WriteString(g.char())
	}
	b.WriteByte('"')
	return b.String()
}

func (g bodyGen) value(depth int) string {
	k := g.r.IntN(20)
	if depth > 3 || k < 9 {
		switch g.r.IntN(8) {
		case 0, 1, 2:
			return g.number()
		case 3, 4, 5:
			return g.str(false)
		default:
			return g.pick("null", "true", "false", "NaN", "Infinity", "-Infinity")
		}
	}
	sep := func() string { return g.ws() + "," + g.ws() }
	var items []string
	if k < 14 {
		for range g.r.IntN(5) {
			items = append(items, g.value(depth+1))
		}
		return "[" + g.ws() + strings.Join(items, sep()) + g.ws() + "]"
	}
	n := g.r.IntN(6)
	if g.r.IntN(10) == 0 {
		n = g.r.IntN(25) // past the pairwise duplicate check
	}
	for range n {
		items = append(items, g.str(true)+g.ws()+":"+g.ws()+g.value(depth+1))
	}
	return "{" + g.ws() + strings.Join(items, sep()) + g.ws() + "}"
}

func (g bodyGen) body() []byte {
	b := []byte(g.ws() + g.value(0) + g.ws())
	if g.r.IntN(10) == 0 {
		b = append([]byte("\xef\xbb\xbf"), b...)
	}
	if g.r.IntN(3) > 0 {
		return b
	}
	const damage = "\"\\/{}[],:.eE+-0159 \t\n\r\x00\x0c\x1f\x7f\x80\xa0\xc0\xc3\xed\xf0\xf4\xffuNI"
	for range 1 + g.r.IntN(3) {
		pos := g.r.IntN(len(b) + 1)
		c := damage[g.r.IntN(len(damage))]
		switch op := g.r.IntN(10); {
		case op < 4:
			b = append(b[:pos], append([]byte{c}, b[pos:]...)...)
		case op < 7 && len(b) > 0:
			pos = min(pos, len(b)-1)
			b = append(b[:pos], b[pos+1:]...)
		case op < 9 && len(b) > 0:
			b[min(pos, len(b)-1)] = c
		default:
			b = b[:pos]
		}
	}
	return b
}

// floatArrays returns bodies that are arrays of floats drawn from every bit
// pattern (subnormals, both ends of the exponent range), written with the
// shortest digits or with too many, for the repr of floats.
func (g bodyGen) floatArrays(n int) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		b := []byte{'['}
		for j := range 20 {
			f := math.Float64frombits(g.r.Uint64())
			if math.IsNaN(f) || math.IsInf(f, 0) {
				f = float64(g.r.Int64()) / float64(1+g.r.IntN(1000))
			}
			if j > 0 {
				b = append(b, ", "...)
			}
			if g.r.IntN(2) == 0 {
				b = strconv.AppendFloat(b, f, 'e', -1, 64)
			} else {
				b = strconv.AppendFloat(b, f, 'e', 15+g.r.IntN(10), 64)
			}
		}
		bodies[i] = append(b, ']')
	}
	return bodies
}

// TestAgainstCPython sends random bodies to one python3 process running
// testdata/cpython_oracle.py and checks that pyjson agrees with every answer.
// CI has python3; without it the test fails rather than skips. Set
// PYJSON_SEED to replay a run, PYJSON_BODIES to send more bodies.
func TestAgainstCPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed as the oracle: %v", err)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("PYJSON_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	n := 10000
	if s := os.Getenv("PYJSON_BODIES"); s != "" {
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("PYJSON_SEED=%d", seed)
	g := bodyGen{rand.New(rand.NewPCG(seed, 1))}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = g.body()
	}
	bodies = append(bodies, g.floatArrays(n/10)...)

	cmd := exec.Command(python, "testdata/cpython_oracle.py")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	writeErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(stdin)
		for _, b := range bodies {
			w.WriteString(base64.StdEncoding.EncodeToString(b))
			w.WriteByte('\n')
		}
		err := w.Flush()
		writeErr <- errors.Join(err, stdin.Close())
	}()

	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	var accepted, refused, canonical int
	for i, body := range bodies {
		if !sc.Scan() {
			t.Fatalf("python3 stopped after %d answers: %v", i, sc.Err())
		}
		ok, answer, _ := strings.Cut(sc.Text(), " ")
		pyOK := ok == "1"
		var dumps []byte
		if pyOK {
			accepted++
			if dumps, err = base64.StdEncoding.DecodeString(answer); err != nil {
				t.Fatal(err)
			}
		} else {
			refused++
		}
		d, err := pyjson.Parse(body)
		switch {
		case !pyOK && err == nil:
			t.Errorf("body %d %q: json.loads raises %s, pyjson accepts", i, body, answer)
		case pyOK && errors.Is(err, pyjson.ErrUnsupportedEncoding):
			// NUL bytes up front: json.loads reads UTF-16 or UTF-32, pyjson refuses on purpose.
		case pyOK && err != nil:
			t.Errorf("body %d %q: json.loads accepts, pyjson: %v", i, body, err)
		case pyOK:
			if got := d.AppendPython(nil); !bytes.Equal(got, dumps) {
				t.Errorf("body %d %q:\n got %q\nwant %q", i, body, got, dumps)
			}
			if d.Canonical() != bytes.Equal(body, dumps) {
				t.Errorf("body %d %q: Canonical() = %v, json.dumps writes %q", i, body, d.Canonical(), dumps)
			}
			// The dump is its own dump, but for keys that collide (see
			// keysCollide): the fast path must see it so.
			if dd, err := pyjson.Parse(dumps); err != nil || !dd.Canonical() && !keysCollide(d.Root()) {
				t.Errorf("body %d: its dump %q is not canonical (%v)", i, dumps, err)
			}
			if d.Canonical() {
				canonical++
			}
		}
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bodies: json.loads accepted %d (%d in its own dump form), refused %d", len(bodies), accepted, canonical, refused)
	if accepted < len(bodies)/3 || refused < n/10 {
		t.Fatalf("generator out of balance: %d accepted, %d refused", accepted, refused)
	}
}
