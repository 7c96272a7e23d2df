// Command bboltpeer is the Go interop peer for Rivet. It drives the reference
// bbolt implementation (go.etcd.io/bbolt 1.3.6, as packaged by Debian) so the
// Rust side can check that files are exchangeable in both directions.
//
// Build it with tests/interop/build-peer.sh; see tests/interop/README.md for
// the subcommands and the dump format contract.
//
// Exit codes: 0 success, 1 consistency problems reported by tx.Check(),
// 2 usage or any other error (message on stderr).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

const (
	exitOK    = 0
	exitCheck = 1
	exitUsage = 2

	openTimeout = 5 * time.Second

	// widgetsSHA256 is the sha256 of the reference test vector file.
	widgetsSHA256 = "9daf3d3ff9f8579599326957e6d8b7fb5551ebaccb3ce8fa74742f33e06462f5"
)

const usageText = `usage: bboltpeer COMMAND ARGS...

commands:
  check DB                 tx.Check() on a read-only open; prints OK or one error per line (exit 1)
  dump DB                  canonical JSON Lines dump of all buckets, keys and values
  gen SCENARIO DB [-page-size N] [-freelist array|hashmap] [-no-freelist-sync]
                           create a new file filled with a deterministic scenario:
                           basic nested overflow merge sequences bigfree all
  modify DB [-no-freelist-sync] [-freelist array|hashmap]
                           deterministic read-write modification of an existing file
  stats DB                 Bucket.Stats() for every top-level bucket
  backup DB OUT            tx.CopyFile(OUT, 0600) from a read-only transaction
  widgets DB               write the reference test vector (widgets/foo=bar, 4096-byte pages)
  cursor DB                run a cursor script from stdin in one write transaction, rolled
                           back at the end; one answer line per script line (see README)
`

// checkFailed is returned when tx.Check() found problems (exit code 1).
type checkFailed struct{ n int }

func (e checkFailed) Error() string {
	return fmt.Sprintf("tx.Check() reported %d problem(s)", e.n)
}

// usageError is returned for bad command lines (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// extraCommands holds subcommands registered from init functions in other
// files of this package (bench.go adds "bench"); main.go alone still builds.
var extraCommands = map[string]func([]string) error{}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usageText)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "check":
		err = cmdCheck(args[1:])
	case "dump":
		err = cmdDump(args[1:])
	case "gen":
		err = cmdGen(args[1:])
	case "modify":
		err = cmdModify(args[1:])
	case "stats":
		err = cmdStats(args[1:])
	case "backup":
		err = cmdBackup(args[1:])
	case "widgets":
		err = cmdWidgets(args[1:])
	case "cursor":
		err = cmdCursor(args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(os.Stdout, usageText)
		return exitOK
	default:
		if cmd, ok := extraCommands[args[0]]; ok {
			err = cmd(args[1:])
		} else {
			err = usageError{fmt.Sprintf("unknown command %q", args[0])}
		}
	}
	if err == nil {
		return exitOK
	}
	var cf checkFailed
	if errors.As(err, &cf) {
		fmt.Fprintf(os.Stderr, "bboltpeer %s: %v\n", args[0], err)
		return exitCheck
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(os.Stderr, "bboltpeer %s: %v\n", args[0], err)
		fmt.Fprint(os.Stderr, usageText)
		return exitUsage
	}
	fmt.Fprintf(os.Stderr, "bboltpeer %s: error: %v\n", args[0], err)
	return exitUsage
}

// parseArgs parses flags that may appear before, between or after the
// positional arguments and requires exactly npos positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, npos int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) != npos {
		return nil, usageError{fmt.Sprintf("expected %d positional argument(s), got %d", npos, len(pos))}
	}
	return pos, nil
}

func openReadOnly(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	return bolt.Open(path, 0600, &bolt.Options{ReadOnly: true, Timeout: openTimeout})
}

// runCheck drains tx.Check(), writing every problem to w, and returns how
// many there were.
func runCheck(tx *bolt.Tx, w io.Writer) int {
	n := 0
	for err := range tx.Check() {
		fmt.Fprintln(w, err)
		n++
	}
	return n
}

// ---------------------------------------------------------------- check

func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	db, err := openReadOnly(pos[0])
	if err != nil {
		return err
	}
	defer db.Close()
	n := 0
	if err := db.View(func(tx *bolt.Tx) error {
		n = runCheck(tx, os.Stdout)
		return nil
	}); err != nil {
		return err
	}
	if n > 0 {
		return checkFailed{n}
	}
	fmt.Println("OK")
	return nil
}

// ---------------------------------------------------------------- dump

// appendJSONString appends s as a JSON string using the escaping rules of
// the dump contract (see README.md). s must be valid UTF-8.
func appendJSONString(dst []byte, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case 0x08:
			dst = append(dst, '\\', 'b')
		case 0x0c:
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}

// appendBytes appends a byte string: a JSON string when it is valid UTF-8,
// otherwise {"base64":"..."} with standard padded base64.
func appendBytes(dst []byte, b []byte) []byte {
	if utf8.Valid(b) {
		return appendJSONString(dst, b)
	}
	dst = append(dst, `{"base64":"`...)
	dst = append(dst, base64.StdEncoding.EncodeToString(b)...)
	return append(dst, `"}`...)
}

func appendPath(dst []byte, path [][]byte) []byte {
	dst = append(dst, `{"bucket":[`...)
	for i, p := range path {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendBytes(dst, p)
	}
	return append(dst, ']')
}

type dumper struct {
	w   *bufio.Writer
	buf []byte
}

func (d *dumper) bucket(path [][]byte, b *bolt.Bucket) error {
	line := appendPath(d.buf[:0], path)
	if seq := b.Sequence(); seq != 0 {
		line = append(line, `,"sequence":`...)
		line = strconv.AppendUint(line, seq, 10)
	}
	line = append(line, '}', '\n')
	if _, err := d.w.Write(line); err != nil {
		return err
	}
	d.buf = line

	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if v == nil {
			if sub := b.Bucket(k); sub != nil {
				if err := d.bucket(childPath(path, k), sub); err != nil {
					return err
				}
				continue
			}
		}
		line := appendPath(d.buf[:0], path)
		line = append(line, `,"key":`...)
		line = appendBytes(line, k)
		line = append(line, `,"value":`...)
		line = appendBytes(line, v)
		line = append(line, '}', '\n')
		if _, err := d.w.Write(line); err != nil {
			return err
		}
		d.buf = line
	}
	return nil
}

func childPath(path [][]byte, k []byte) [][]byte {
	p := make([][]byte, len(path), len(path)+1)
	copy(p, path)
	return append(p, append([]byte(nil), k...))
}

func cmdDump(args []string) error {
	fs := flag.NewFlagSet("dump", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	db, err := openReadOnly(pos[0])
	if err != nil {
		return err
	}
	defer db.Close()
	d := &dumper{w: bufio.NewWriterSize(os.Stdout, 1<<16)}
	if err := db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			b := tx.Bucket(k)
			if b == nil {
				return fmt.Errorf("root entry %q is not a bucket", k)
			}
			if err := d.bucket(childPath(nil, k), b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return d.w.Flush()
}

// ---------------------------------------------------------------- stats

func displayName(name []byte) string {
	plain := utf8.Valid(name)
	for _, c := range name {
		if c < 0x20 || c == 0x7f {
			plain = false
		}
	}
	if plain {
		return string(name)
	}
	return string(appendBytes(nil, name))
}

func cmdStats(args []string) error {
	fs := flag.NewFlagSet("stats", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	db, err := openReadOnly(pos[0])
	if err != nil {
		return err
	}
	defer db.Close()
	w := bufio.NewWriter(os.Stdout)
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			_, err := fmt.Fprintf(w, "%s\tBranchPageN=%d BranchOverflowN=%d LeafPageN=%d LeafOverflowN=%d KeyN=%d Depth=%d BranchAlloc=%d BranchInuse=%d LeafAlloc=%d LeafInuse=%d BucketN=%d InlineBucketN=%d InlineBucketInuse=%d\n",
				displayName(name), s.BranchPageN, s.BranchOverflowN, s.LeafPageN, s.LeafOverflowN,
				s.KeyN, s.Depth, s.BranchAlloc, s.BranchInuse, s.LeafAlloc, s.LeafInuse,
				s.BucketN, s.InlineBucketN, s.InlineBucketInuse)
			return err
		})
	}); err != nil {
		return err
	}
	return w.Flush()
}

// ---------------------------------------------------------------- backup

func cmdBackup(args []string) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 2)
	if err != nil {
		return err
	}
	db, err := openReadOnly(pos[0])
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		return tx.CopyFile(pos[1], 0600)
	})
}

// ---------------------------------------------------------------- widgets

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func cmdWidgets(args []string) error {
	fs := flag.NewFlagSet("widgets", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	path := pos[0]
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s already exists", path)
	}
	db, err := bolt.Open(path, 0600, &bolt.Options{PageSize: 4096})
	if err != nil {
		return err
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("foo"), []byte("bar"))
	}); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	sum, err := fileSHA256(path)
	if err != nil {
		return err
	}
	if sum != widgetsSHA256 {
		return fmt.Errorf("sha256 %s differs from the test vector %s", sum, widgetsSHA256)
	}
	fmt.Printf("ok sha256=%s\n", sum)
	return nil
}

// ---------------------------------------------------------------- gen

// genCtx carries the open database and the options the scenario runs with.
type genCtx struct {
	db             *bolt.DB
	pageSize       int
	noFreelistSync bool
}

type scenario struct {
	name string
	fn   func(g *genCtx) error
}

var scenarios = []scenario{
	{"basic", genBasic},
	{"nested", genNested},
	{"overflow", genOverflow},
	{"merge", genMerge},
	{"sequences", genSequences},
	{"bigfree", genBigfree},
}

func scenarioNames() string {
	names := make([]string, 0, len(scenarios)+1)
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return strings.Join(append(names, "all"), " ")
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// patternBytes returns n printable bytes derived from seed.
func patternBytes(seed string, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
	h := fnv.New64a()
	h.Write([]byte(seed))
	x := h.Sum64() | 1
	b := make([]byte, n)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = alphabet[x%uint64(len(alphabet))]
	}
	return b
}

// bucketAt returns the bucket at path, creating every missing level.
func bucketAt(tx *bolt.Tx, path ...string) (*bolt.Bucket, error) {
	b, err := tx.CreateBucketIfNotExists([]byte(path[0]))
	if err != nil {
		return nil, fmt.Errorf("create %q: %w", path[0], err)
	}
	for i, p := range path[1:] {
		b, err = b.CreateBucketIfNotExists([]byte(p))
		if err != nil {
			return nil, fmt.Errorf("create %q: %w", path[:i+2], err)
		}
	}
	return b, nil
}

func genBasic(g *genCtx) error {
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("widgets"))
		if err != nil {
			return err
		}
		return b.Put([]byte("foo"), []byte("bar"))
	}); err != nil {
		return err
	}
	return g.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("empty"))
		return err
	})
}

func genNested(g *genCtx) error {
	r := rand.New(rand.NewSource(2))
	// tx 1: three levels, a bucket with both keys and sub-buckets, an inline
	// leaf bucket holding a zero-length value.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		top, err := bucketAt(tx, "nested")
		if err != nil {
			return err
		}
		if err := top.Put([]byte("top-key"), []byte("top-value")); err != nil {
			return err
		}
		a, err := bucketAt(tx, "nested", "a")
		if err != nil {
			return err
		}
		for i := 0; i < 5; i++ {
			if err := a.Put([]byte(fmt.Sprintf("a-key-%d", i)), []byte(fmt.Sprintf("a-value-%d", i))); err != nil {
				return err
			}
		}
		c, err := bucketAt(tx, "nested", "a", "b", "c")
		if err != nil {
			return err
		}
		for _, kv := range [][2]string{{"x", "1"}, {"y", "2"}, {"z", "3"}, {"zero", ""}} {
			if err := c.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		inl, err := bucketAt(tx, "nested", "inline")
		if err != nil {
			return err
		}
		for _, kv := range [][2]string{{"i1", "one"}, {"i2", "two"}, {"i3", ""}} {
			if err := inl.Put([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// tx 2: paged buckets with hundreds of keys, at levels 2 and 3.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b, err := bucketAt(tx, "nested", "a", "b")
		if err != nil {
			return err
		}
		for i := 0; i < 600; i++ {
			if err := b.Put([]byte(fmt.Sprintf("b%05d", i)), patternBytes(fmt.Sprintf("b%d", i), 20+i%50)); err != nil {
				return err
			}
		}
		p, err := bucketAt(tx, "nested", "paged")
		if err != nil {
			return err
		}
		for i := 0; i < 400; i++ {
			if err := p.Put([]byte(fmt.Sprintf("p%04d", i)), patternBytes(fmt.Sprintf("p%d", i), 64)); err != nil {
				return err
			}
		}
		// A non-inline parent (it has a child bucket) holding an inline child.
		child, err := bucketAt(tx, "nested", "inline-parent", "inline-child")
		if err != nil {
			return err
		}
		return child.Put([]byte("k"), []byte("v"))
	}); err != nil {
		return err
	}
	// tx 3: binary keys and values, 1-byte keys, 1000+ byte keys, names
	// that need escaping, a non-UTF-8 bucket name.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		bin, err := bucketAt(tx, "nested", "binary")
		if err != nil {
			return err
		}
		puts := []struct{ k, v []byte }{
			{[]byte{0x00}, []byte{0xff}},
			{[]byte{0x01}, []byte{}},
			{[]byte{0x7f}, []byte("del")},
			{[]byte{0x80}, []byte{0x80, 0x81}},
			{[]byte{0xff}, []byte{0xc3, 0x28}},
			{[]byte("a"), []byte("single byte key")},
			{[]byte{0xff, 0xfe, 0x00, 0x01}, []byte{0xed, 0xa0, 0x80}},
			{[]byte{0xc0, 0xaf}, []byte("overlong encoding key")},
			{[]byte("quote\"back\\slash"), []byte("ctl\x00\x01\x08\x09\x0a\x0b\x0c\x0d\x1b\x1f\x7f end")},
			{[]byte("unicode \u00e9\u65e5\u672c\U0001F600"), []byte("\u2028\u2029 literal")},
			{[]byte("</script>&<>"), []byte("html chars")},
		}
		for _, p := range puts {
			if err := bin.Put(p.k, p.v); err != nil {
				return err
			}
		}
		for i := 0; i < 50; i++ {
			k := randBytes(r, 1+r.Intn(16))
			if err := bin.Put(k, randBytes(r, r.Intn(200))); err != nil {
				return err
			}
		}
		long, err := bucketAt(tx, "nested", "long-keys")
		if err != nil {
			return err
		}
		for _, n := range []int{1000, 1001, 1500, 4000} {
			k := append([]byte(fmt.Sprintf("long-%05d-", n)), patternBytes(fmt.Sprint("long", n), n-11)...)
			if err := long.Put(k, []byte(fmt.Sprint(n))); err != nil {
				return err
			}
		}
		kb := randBytes(r, 1200)
		kb[0] = 0xfe
		if err := long.Put(kb, randBytes(r, 300)); err != nil {
			return err
		}
		if err := long.Put([]byte("s"), []byte("short")); err != nil {
			return err
		}
		nb, err := tx.Bucket([]byte("nested")).CreateBucketIfNotExists([]byte{0xfe, 'n', 'o', 't', 0xff, '\n'})
		if err != nil {
			return err
		}
		return nb.Put([]byte("in non-utf8 bucket"), []byte{0x00, 0x00})
	}); err != nil {
		return err
	}
	// tx 4: delete keys so a paged bucket becomes inline again, overwrite
	// some values, remove a sub-bucket.
	return g.db.Update(func(tx *bolt.Tx) error {
		p := tx.Bucket([]byte("nested")).Bucket([]byte("paged"))
		for i := 0; i < 400; i++ {
			if i%100 == 7 {
				continue
			}
			if err := p.Delete([]byte(fmt.Sprintf("p%04d", i))); err != nil {
				return err
			}
		}
		b := tx.Bucket([]byte("nested")).Bucket([]byte("a")).Bucket([]byte("b"))
		for i := 0; i < 600; i += 7 {
			if err := b.Put([]byte(fmt.Sprintf("b%05d", i)), []byte("rewritten")); err != nil {
				return err
			}
		}
		gone, err := bucketAt(tx, "nested", "short-lived")
		if err != nil {
			return err
		}
		if err := gone.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		return tx.Bucket([]byte("nested")).DeleteBucket([]byte("short-lived"))
	})
}

func genOverflow(g *genCtx) error {
	r := rand.New(rand.NewSource(3))
	// tx 1: small values mixed with 5 000, 20 000 and 300 000 byte ones.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b, err := bucketAt(tx, "overflow")
		if err != nil {
			return err
		}
		for i := 0; i < 60; i++ {
			if err := b.Put([]byte(fmt.Sprintf("small-%03d", i)), patternBytes(fmt.Sprint("s", i), 1+i%40)); err != nil {
				return err
			}
		}
		for _, kv := range []struct {
			k string
			n int
		}{{"big-005000", 5000}, {"big-020000", 20000}, {"big-300000", 300000}, {"big-020000-b", 20000}} {
			if err := b.Put([]byte(kv.k), randBytes(r, kv.n)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// tx 2: more big values, overwrite big with bigger and big with small.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("overflow"))
		for i := 0; i < 5; i++ {
			if err := b.Put([]byte(fmt.Sprintf("mid-%d", i)), randBytes(r, 5000)); err != nil {
				return err
			}
		}
		if err := b.Put([]byte("big-020000"), randBytes(r, 300000)); err != nil {
			return err
		}
		if err := b.Put([]byte("big-300000"), []byte("now small")); err != nil {
			return err
		}
		sub, err := b.CreateBucketIfNotExists([]byte("sub"))
		if err != nil {
			return err
		}
		return sub.Put([]byte("sub-big"), patternBytes("sub-big", 20000))
	}); err != nil {
		return err
	}
	// tx 3: deletions.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("overflow"))
		for _, k := range []string{"big-005000", "mid-1", "mid-3", "small-010", "small-011", "small-059"} {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return b.Put([]byte("big-005000-new"), randBytes(r, 5000))
	}); err != nil {
		return err
	}
	// tx 4: shrink and grow again.
	return g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("overflow"))
		if err := b.Put([]byte("big-020000"), randBytes(r, 5000)); err != nil {
			return err
		}
		if err := b.Put([]byte("big-300000"), randBytes(r, 300000)); err != nil {
			return err
		}
		return b.Put([]byte("small-000"), randBytes(r, 20000))
	})
}

func mergeKey(i int) []byte { return []byte(fmt.Sprintf("merge-%06d", i)) }

func genMerge(g *genCtx) error {
	const n = 20000
	r := rand.New(rand.NewSource(4))
	perm := r.Perm(n)
	// 4 txs of 5 000 inserts each, in random order.
	for start := 0; start < n; start += 5000 {
		if err := g.db.Update(func(tx *bolt.Tx) error {
			b, err := bucketAt(tx, "merge")
			if err != nil {
				return err
			}
			for _, i := range perm[start : start+5000] {
				if err := b.Put(mergeKey(i), patternBytes(fmt.Sprint("m", i), 8+i%60)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	// one tx deleting all but every 17th key, so pages merge.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("merge"))
		for _, i := range perm {
			if i%17 == 0 {
				continue
			}
			if err := b.Delete(mergeKey(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// a few more puts.
	return g.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("merge"))
		for i := 0; i < 40; i++ {
			k := mergeKey(r.Intn(n))
			if err := b.Put(k, append([]byte("after-merge-"), k...)); err != nil {
				return err
			}
		}
		return nil
	})
}

func genSequences(g *genCtx) error {
	if err := g.db.Update(func(tx *bolt.Tx) error {
		top, err := bucketAt(tx, "sequences")
		if err != nil {
			return err
		}
		if err := top.SetSequence(7); err != nil {
			return err
		}
		big, err := bucketAt(tx, "sequences", "big")
		if err != nil {
			return err
		}
		if err := big.SetSequence(1<<63 + 5); err != nil {
			return err
		}
		nested, err := bucketAt(tx, "sequences", "big", "nested")
		if err != nil {
			return err
		}
		for i := 0; i < 3; i++ {
			if _, err := nested.NextSequence(); err != nil {
				return err
			}
		}
		if _, err := bucketAt(tx, "sequences", "zero"); err != nil {
			return err
		}
		max, err := bucketAt(tx, "sequences", "max")
		if err != nil {
			return err
		}
		if err := max.SetSequence(^uint64(0)); err != nil {
			return err
		}
		reset, err := bucketAt(tx, "sequences", "reset")
		if err != nil {
			return err
		}
		if err := reset.SetSequence(99); err != nil {
			return err
		}
		next, err := bucketAt(tx, "sequences", "next")
		if err != nil {
			return err
		}
		for i := 0; i < 5; i++ {
			id, err := next.NextSequence()
			if err != nil {
				return err
			}
			if err := next.Put([]byte(fmt.Sprintf("id-%03d", id)), []byte("x")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return g.db.Update(func(tx *bolt.Tx) error {
		s := tx.Bucket([]byte("sequences"))
		next := s.Bucket([]byte("next"))
		for i := 0; i < 5; i++ {
			if _, err := next.NextSequence(); err != nil {
				return err
			}
		}
		if err := s.Bucket([]byte("reset")).SetSequence(0); err != nil {
			return err
		}
		if _, err := s.Bucket([]byte("big")).NextSequence(); err != nil {
			return err
		}
		// A paged bucket with a sequence.
		paged, err := s.CreateBucketIfNotExists([]byte("paged"))
		if err != nil {
			return err
		}
		if err := paged.SetSequence(123456789); err != nil {
			return err
		}
		for i := 0; i < 300; i++ {
			if err := paged.Put([]byte(fmt.Sprintf("k%04d", i)), patternBytes(fmt.Sprint("q", i), 40)); err != nil {
				return err
			}
		}
		return nil
	})
}

const (
	bigfreeBuckets = 10
	bigfreeValues  = 5000
	bigfreeValueSz = 1000
)

func genBigfree(g *genCtx) error {
	// A small bucket that survives.
	if err := g.db.Update(func(tx *bolt.Tx) error {
		b, err := bucketAt(tx, "bigfree")
		if err != nil {
			return err
		}
		return b.Put([]byte("survivor"), []byte("still here"))
	}); err != nil {
		return err
	}
	// 5 000 values of 1 000 bytes per sub-bucket, one tx per sub-bucket,
	// enough sub-buckets that 1 KiB pages free more than 65 535 pages.
	r := rand.New(rand.NewSource(6))
	for n := 0; n < bigfreeBuckets; n++ {
		if err := g.db.Update(func(tx *bolt.Tx) error {
			b, err := bucketAt(tx, "bigfree-doomed", fmt.Sprintf("part-%02d", n))
			if err != nil {
				return err
			}
			for i := 0; i < bigfreeValues; i++ {
				if err := b.Put([]byte(fmt.Sprintf("v%06d", i)), randBytes(r, bigfreeValueSz)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := g.db.Update(func(tx *bolt.Tx) error {
		return tx.DeleteBucket([]byte("bigfree-doomed"))
	}); err != nil {
		return err
	}
	return nil
}

// freelistInfo is what readFreelist found in the file itself.
type freelistInfo struct {
	txid        uint64
	hwm         uint64
	pgid        uint64 // 0xffffffffffffffff when the freelist is not synced
	headerCount uint16
	count       uint64
	overflow    uint32
}

const pgidNoFreelist = ^uint64(0)

// readFreelist reads the file directly: the newest valid meta page and the
// header of the freelist page it points to.
func readFreelist(path string) (*freelistInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	le := binary.LittleEndian
	hdr := make([]byte, 80)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, err
	}
	pageSize := int64(le.Uint32(hdr[24:]))
	var best *freelistInfo
	for i := int64(0); i < 2; i++ {
		m := make([]byte, 80)
		if _, err := f.ReadAt(m, i*pageSize); err != nil {
			return nil, err
		}
		if le.Uint16(m[8:]) != 0x04 || le.Uint32(m[16:]) != 0xED0CDAED || le.Uint32(m[20:]) != 2 {
			continue
		}
		h := fnv.New64a()
		h.Write(m[16:72])
		if h.Sum64() != le.Uint64(m[72:]) {
			continue
		}
		info := &freelistInfo{pgid: le.Uint64(m[48:]), hwm: le.Uint64(m[56:]), txid: le.Uint64(m[64:])}
		if best == nil || info.txid > best.txid {
			best = info
		}
	}
	if best == nil {
		return nil, errors.New("no valid meta page")
	}
	if best.pgid == pgidNoFreelist {
		return best, nil
	}
	p := make([]byte, 24)
	if _, err := f.ReadAt(p, int64(best.pgid)*pageSize); err != nil {
		return nil, err
	}
	if flags := le.Uint16(p[8:]); flags != 0x10 {
		return nil, fmt.Errorf("page %d has flags %#x, want freelist 0x10", best.pgid, flags)
	}
	best.headerCount = le.Uint16(p[10:])
	best.overflow = le.Uint32(p[12:])
	best.count = uint64(best.headerCount)
	if best.headerCount == 0xffff {
		best.count = le.Uint64(p[16:])
	}
	return best, nil
}

func cmdGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	pageSize := fs.Int("page-size", 4096, "page size")
	freelist := fs.String("freelist", "array", "freelist type: array or hashmap")
	noSync := fs.Bool("no-freelist-sync", false, "do not sync the freelist")
	pos, err := parseArgs(fs, args, 2)
	if err != nil {
		return err
	}
	name, path := pos[0], pos[1]
	var run []scenario
	for _, s := range scenarios {
		if name == s.name || name == "all" {
			run = append(run, s)
		}
	}
	if len(run) == 0 {
		return usageError{fmt.Sprintf("unknown scenario %q (known: %s)", name, scenarioNames())}
	}
	var ft bolt.FreelistType
	switch *freelist {
	case "array":
		ft = bolt.FreelistArrayType
	case "hashmap":
		ft = bolt.FreelistMapType
	default:
		return usageError{fmt.Sprintf("unknown freelist type %q", *freelist)}
	}
	if *pageSize < 1024 || *pageSize > 65536 || *pageSize&(*pageSize-1) != 0 {
		return usageError{fmt.Sprintf("page size %d is not a power of two in [1024, 65536]", *pageSize)}
	}
	// Refuse to touch an existing file.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0600)
	if err != nil {
		return err
	}
	f.Close()

	db, err := bolt.Open(path, 0600, &bolt.Options{
		Timeout:        openTimeout,
		PageSize:       *pageSize,
		FreelistType:   ft,
		NoFreelistSync: *noSync,
	})
	if err != nil {
		return err
	}
	g := &genCtx{db: db, pageSize: *pageSize, noFreelistSync: *noSync}
	for _, s := range run {
		if err := s.fn(g); err != nil {
			db.Close()
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
	}
	var txid int
	var size int64
	var nBuckets, nKeys int
	problems := 0
	if err := db.View(func(tx *bolt.Tx) error {
		problems = runCheck(tx, os.Stderr)
		txid = tx.ID()
		size = tx.Size()
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			s := b.Stats()
			nBuckets += s.BucketN
			nKeys += s.KeyN
			return nil
		})
	}); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if problems > 0 {
		return checkFailed{problems}
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	fl, err := readFreelist(path)
	if err != nil {
		return fmt.Errorf("reading freelist back: %w", err)
	}
	flDesc := "freelist=unsynced"
	if fl.pgid != pgidNoFreelist {
		flDesc = fmt.Sprintf("freelist-page=%d freelist-count=%d freelist-header-count=%#x freelist-overflow=%d",
			fl.pgid, fl.count, fl.headerCount, fl.overflow)
	}
	wantsOverflow := *pageSize == 1024 && !*noSync && (name == "bigfree" || name == "all")
	switch {
	case fl.pgid == pgidNoFreelist:
		fmt.Fprintf(os.Stderr, "note: freelist not synced (meta freelist pgid = 0xffffffffffffffff)\n")
	case fl.headerCount == 0xffff:
		fmt.Fprintf(os.Stderr, "note: freelist page %d header count is 0xffff; the real count %d is stored in the first element\n", fl.pgid, fl.count)
	case wantsOverflow:
		return fmt.Errorf("expected the freelist count to overflow (header 0xffff) but header count is %d", fl.headerCount)
	}
	fmt.Printf("ok scenario=%s page-size=%d freelist-type=%s no-freelist-sync=%t txid=%d hwm=%d tx-size=%d file-size=%d buckets=%d keys=%d %s\n",
		name, *pageSize, ft, *noSync, txid, fl.hwm, size, st.Size(), nBuckets, nKeys, flDesc)
	return nil
}

// ---------------------------------------------------------------- modify

func cmdModify(args []string) error {
	fs := flag.NewFlagSet("modify", flag.ContinueOnError)
	noSync := fs.Bool("no-freelist-sync", false, "do not sync the freelist")
	freelist := fs.String("freelist", "array", "freelist type: array or hashmap")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	var ft bolt.FreelistType
	switch *freelist {
	case "array":
		ft = bolt.FreelistArrayType
	case "hashmap":
		ft = bolt.FreelistMapType
	default:
		return usageError{fmt.Sprintf("unknown freelist type %q", *freelist)}
	}
	path := pos[0]
	if _, err := os.Stat(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0600, &bolt.Options{Timeout: openTimeout, NoFreelistSync: *noSync, FreelistType: ft})
	if err != nil {
		return err
	}
	defer db.Close()
	nBuckets, nDeleted := 0, 0
	if err := db.Update(func(tx *bolt.Tx) error {
		// Collect every bucket path first.
		var paths [][][]byte
		var walk func(path [][]byte, b *bolt.Bucket)
		walk = func(path [][]byte, b *bolt.Bucket) {
			paths = append(paths, path)
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil {
					if sub := b.Bucket(k); sub != nil {
						walk(childPath(path, k), sub)
					}
				}
			}
		}
		c := tx.Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			walk(childPath(nil, k), tx.Bucket(k))
		}
		for _, path := range paths {
			b := tx.Bucket(path[0])
			for _, p := range path[1:] {
				b = b.Bucket(p)
			}
			if b == nil {
				return fmt.Errorf("bucket %q vanished", path)
			}
			var doomed [][]byte
			idx := 0
			c := b.Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if v == nil && b.Bucket(k) != nil {
					continue
				}
				if idx%3 == 2 {
					doomed = append(doomed, append([]byte(nil), k...))
				}
				idx++
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return fmt.Errorf("delete %q in %q: %w", k, path, err)
				}
			}
			if err := b.Put([]byte("go-mod"), []byte("value from go")); err != nil {
				return fmt.Errorf("put go-mod in %q: %w", path, err)
			}
			if _, err := b.NextSequence(); err != nil {
				return fmt.Errorf("next sequence in %q: %w", path, err)
			}
			nBuckets++
			nDeleted += len(doomed)
		}
		added, err := tx.CreateBucketIfNotExists([]byte("go-added"))
		if err != nil {
			return err
		}
		for i := 0; i < 500; i++ {
			k := fmt.Sprintf("k%05d", i)
			if err := added.Put([]byte(k), patternBytes("go-added/"+k, 100)); err != nil {
				return err
			}
		}
		inner, err := added.CreateBucketIfNotExists([]byte("inner"))
		if err != nil {
			return err
		}
		return inner.Put([]byte("x"), []byte("y"))
	}); err != nil {
		return err
	}
	problems := 0
	if err := db.View(func(tx *bolt.Tx) error {
		problems = runCheck(tx, os.Stdout)
		return nil
	}); err != nil {
		return err
	}
	if problems > 0 {
		return checkFailed{problems}
	}
	fmt.Fprintf(os.Stderr, "modified %d bucket(s), deleted %d key(s)\n", nBuckets, nDeleted)
	fmt.Println("ok")
	return nil
}

// ---------------------------------------------------------------- cursor

// cmdCursor runs a cursor script (stdin, one command per line) against the file.
// Commands and answers (keys and values in lowercase hex):
//
//	bucket [NAME...]  open the bucket at this path (none: the root) and a new
//	                  cursor on it          -> ok | nobucket
//	first | last | next | prev | seek [KEY]
//	                                        -> nil | k KEY v VALUE | k KEY bucket
//	delete                                  -> ok | err incompatible | err MESSAGE
//
// Everything runs in write transactions. A delete commits its transaction and
// begins the next one with a new cursor on the same bucket (unpositioned): the
// commit rebalances the tree, so answers after a delete never depend on
// bbolt 1.3.6's handling of emptied pages inside a transaction. The last
// transaction is rolled back.
func cmdCursor(args []string) error {
	fs := flag.NewFlagSet("cursor", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	if _, err := os.Stat(pos[0]); err != nil {
		return err
	}
	db, err := bolt.Open(pos[0], 0600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return err
	}
	defer db.Close()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	tx, err := db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var path [][]byte
	haveBucket := false
	var c *bolt.Cursor
	// open (re)opens the bucket at path and a new cursor on it.
	open := func() {
		c = nil
		if len(path) == 0 {
			c = tx.Cursor()
			return
		}
		b := tx.Bucket(path[0])
		for _, name := range path[1:] {
			if b == nil {
				break
			}
			b = b.Bucket(name)
		}
		if b != nil {
			c = b.Cursor()
		}
	}
	line := 0
	for in.Scan() {
		line++
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "bucket" {
			path = nil
			for _, h := range f[1:] {
				name, err := hex.DecodeString(h)
				if err != nil {
					return fmt.Errorf("line %d: %v", line, err)
				}
				path = append(path, name)
			}
			open()
			haveBucket = c != nil
			if c == nil {
				fmt.Fprintln(out, "nobucket")
			} else {
				fmt.Fprintln(out, "ok")
			}
			continue
		}
		if !haveBucket || c == nil {
			return fmt.Errorf("line %d: %s without an open bucket", line, f[0])
		}
		var k, v []byte
		switch f[0] {
		case "first":
			k, v = c.First()
		case "last":
			k, v = c.Last()
		case "next":
			k, v = c.Next()
		case "prev":
			k, v = c.Prev()
		case "seek":
			var key []byte
			if len(f) > 1 {
				if key, err = hex.DecodeString(f[1]); err != nil {
					return fmt.Errorf("line %d: %v", line, err)
				}
			}
			k, v = c.Seek(key)
		case "delete":
			switch err := c.Delete(); err {
			case nil:
				fmt.Fprintln(out, "ok")
			case bolt.ErrIncompatibleValue:
				fmt.Fprintln(out, "err incompatible")
			default:
				fmt.Fprintf(out, "err %v\n", err)
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("line %d: commit: %v", line, err)
			}
			if tx, err = db.Begin(true); err != nil {
				return err
			}
			open()
			continue
		default:
			return usageError{fmt.Sprintf("line %d: unknown cursor command %q", line, f[0])}
		}
		switch {
		case k == nil:
			fmt.Fprintln(out, "nil")
		case v == nil:
			fmt.Fprintf(out, "k %x bucket\n", k)
		default:
			fmt.Fprintf(out, "k %x v %x\n", k, v)
		}
	}
	return in.Err()
}
