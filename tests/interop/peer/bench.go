// bench.go adds the "bench" subcommand: the Go bbolt 1.3.6 backend of the
// rivet-bench suite (crates/rivet-bench). It implements the same workloads as
// crates/rivet-bench/src/workload.rs, phase for phase, generates the same data
// (crates/rivet-bench/src/gen.rs and record.rs) and prints the same JSON Lines
// events on stdout, so the Rust driver treats it like any other engine:
//
//	{"ev":"start","phase":"bulk_load"}
//	{"ev":"end","phase":"bulk_load","secs":1.234,"ops":1000000}
//	{"ev":"value","name":"size_compacted","value":123456,"unit":"bytes"}
//	{"ev":"note","text":"..."}
//	{"ev":"done"}
//
// bbolt runs with its defaults: fdatasync on every commit, FillPercent 0.5,
// array freelist. Keys and values handed to Put stay referenced until commit,
// so every Put gets freshly allocated slices, as a Go user's code would.
//
// This file registers itself in main.go's extraCommands from init, so
// tests/interop/build-peer.sh (which compiles main.go alone) is unaffected;
// rivet-bench compiles both files (crates/rivet-bench/src/peer.rs).
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
)

func init() {
	extraCommands["bench"] = cmdBench
}

const (
	benchKeyLen   = 24
	benchValueLen = 150
	keySeed       = 0x5249_5645_545f_4b45
	valueSeed     = 0x5249_5645_545f_5641
	recordSeed    = 0x5245_434f_5244_5f53
)

var benchBucket = []byte("bench")

// mix64 is the SplitMix64 output function (gen.rs: mix64).
func mix64(x uint64) uint64 {
	z := x + 0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func genKey(i uint64, out []byte) {
	for j := uint64(0); j < 3; j++ {
		binary.LittleEndian.PutUint64(out[j*8:], mix64(keySeed^(i*4+j)))
	}
}

func genSortedKey(i uint64, out []byte) {
	binary.BigEndian.PutUint64(out, i)
	for j := uint64(0); j < 2; j++ {
		binary.LittleEndian.PutUint64(out[8+j*8:], mix64(keySeed^(i*4+j)))
	}
}

func genValue(i uint64, out []byte) {
	var buf [152]byte
	for j := uint64(0); j < 19; j++ {
		binary.LittleEndian.PutUint64(buf[j*8:], mix64(valueSeed^(i*32+j)))
	}
	copy(out, buf[:benchValueLen])
}

func valueCheckByte(i uint64) byte { return byte(mix64(valueSeed ^ (i * 32))) }

// seq is a SplitMix64 stream (gen.rs: Seq).
type seq struct{ state uint64 }

func (s *seq) next() uint64 {
	s.state += 0x9E3779B97F4A7C15
	z := s.state
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

func (s *seq) below(n uint64) uint64 { return s.next() % n }

// ---------------------------------------------------------------- records

// benchUser is the study's UserInfo (record.rs: User).
type benchUser struct {
	ID          int64   `json:"id"`
	Username    string  `json:"username"`
	Email       string  `json:"email"`
	FirstName   string  `json:"first_name"`
	LastName    string  `json:"last_name"`
	Age         int32   `json:"age"`
	Height      float32 `json:"height"`
	Weight      float32 `json:"weight"`
	Balance     float64 `json:"balance"`
	IsActive    bool    `json:"is_active"`
	CreatedAt   int64   `json:"created_at"`
	UpdatedAt   int64   `json:"updated_at"`
	LoginCount  int32   `json:"login_count"`
	Score       float64 `json:"score"`
	Description string  `json:"description"`
}

var (
	firstNames = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi"}
	lastNames  = []string{"Smith", "Johnson", "Lee", "Brown", "Garcia", "Miller", "Davis", "Wilson"}
	descWords  = []string{"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing",
		"elit", "sed", "do", "eiusmod", "tempor", "incididunt", "labore", "magna", "aliqua"}
)

func genUser(id uint64) benchUser {
	r := func(j uint64) uint64 { return mix64(recordSeed ^ (id*16 + j)) }
	var d strings.Builder
	for j := uint64(8); d.Len() < 90; j++ {
		if d.Len() > 0 {
			d.WriteByte(' ')
		}
		d.WriteString(descWords[r(j)%16])
	}
	d.WriteByte('.')
	return benchUser{
		ID:          int64(id),
		Username:    fmt.Sprintf("user%07d", id),
		Email:       fmt.Sprintf("user%07d@example.com", id),
		FirstName:   firstNames[r(0)%8],
		LastName:    lastNames[r(1)%8],
		Age:         18 + int32(r(2)%70),
		Height:      150 + float32(r(3)%500)/10,
		Weight:      45 + float32(r(4)%800)/10,
		Balance:     float64(r(5)%10000000) / 100,
		IsActive:    r(6)%2 == 0,
		CreatedAt:   1600000000 + int64(r(7)%100000000),
		UpdatedAt:   1700000000 + int64(r(7)%100000000),
		LoginCount:  int32(r(5) % 1000),
		Score:       float64(r(6)%100000) / 1000,
		Description: d.String(),
	}
}

func (u *benchUser) encodeBinary() []byte {
	b := make([]byte, 0, 64+len(u.Username)+len(u.Email)+len(u.FirstName)+len(u.LastName)+len(u.Description)+10)
	le := binary.LittleEndian
	b = le.AppendUint64(b, uint64(u.ID))
	b = le.AppendUint32(b, uint32(u.Age))
	b = le.AppendUint32(b, math.Float32bits(u.Height))
	b = le.AppendUint32(b, math.Float32bits(u.Weight))
	b = le.AppendUint64(b, math.Float64bits(u.Balance))
	if u.IsActive {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = le.AppendUint64(b, uint64(u.CreatedAt))
	b = le.AppendUint64(b, uint64(u.UpdatedAt))
	b = le.AppendUint32(b, uint32(u.LoginCount))
	b = le.AppendUint64(b, math.Float64bits(u.Score))
	for _, s := range []string{u.Username, u.Email, u.FirstName, u.LastName, u.Description} {
		b = le.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	return b
}

var errDecode = errors.New("cannot decode record")

func decodeBinary(b []byte) (benchUser, error) {
	var u benchUser
	le := binary.LittleEndian
	if len(b) < 57 {
		return u, errDecode
	}
	u.ID = int64(le.Uint64(b[0:]))
	u.Age = int32(le.Uint32(b[8:]))
	u.Height = math.Float32frombits(le.Uint32(b[12:]))
	u.Weight = math.Float32frombits(le.Uint32(b[16:]))
	u.Balance = math.Float64frombits(le.Uint64(b[20:]))
	u.IsActive = b[28] != 0
	u.CreatedAt = int64(le.Uint64(b[29:]))
	u.UpdatedAt = int64(le.Uint64(b[37:]))
	u.LoginCount = int32(le.Uint32(b[45:]))
	u.Score = math.Float64frombits(le.Uint64(b[49:]))
	at := 57
	str := func() (string, error) {
		if at+2 > len(b) {
			return "", errDecode
		}
		n := int(le.Uint16(b[at:]))
		at += 2
		if at+n > len(b) {
			return "", errDecode
		}
		s := string(b[at : at+n])
		at += n
		return s, nil
	}
	var err error
	for _, dst := range []*string{&u.Username, &u.Email, &u.FirstName, &u.LastName, &u.Description} {
		if *dst, err = str(); err != nil {
			return u, err
		}
	}
	return u, nil
}

func encodeUser(enc string, u *benchUser) []byte {
	if enc == "binary" {
		return u.encodeBinary()
	}
	b, err := json.Marshal(u)
	if err != nil {
		panic(err) // a plain struct always marshals
	}
	return b
}

func decodeUser(enc string, b []byte) (benchUser, error) {
	if enc == "binary" {
		return decodeBinary(b)
	}
	var u benchUser
	err := json.Unmarshal(b, &u)
	return u, err
}

func recordKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// ---------------------------------------------------------------- events

func emit(line string) { os.Stdout.WriteString(line + "\n") }

func phase(name string, ops uint64, f func() error) error {
	emit(`{"ev":"start","phase":` + strconv.Quote(name) + `}`)
	t := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	emit(fmt.Sprintf(`{"ev":"end","phase":%s,"secs":%s,"ops":%d}`, strconv.Quote(name),
		strconv.FormatFloat(time.Since(t).Seconds(), 'g', -1, 64), ops))
	return nil
}

func phaseN(name string, f func() (uint64, error)) error {
	emit(`{"ev":"start","phase":` + strconv.Quote(name) + `}`)
	t := time.Now()
	ops, err := f()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	emit(fmt.Sprintf(`{"ev":"end","phase":%s,"secs":%s,"ops":%d}`, strconv.Quote(name),
		strconv.FormatFloat(time.Since(t).Seconds(), 'g', -1, 64), ops))
	return nil
}

func emitValue(name string, v float64, unit string) {
	emit(fmt.Sprintf(`{"ev":"value","name":%s,"value":%s,"unit":%s}`, strconv.Quote(name),
		strconv.FormatFloat(v, 'f', -1, 64), strconv.Quote(unit)))
}

func emitNote(text string) {
	b, _ := json.Marshal(text)
	emit(`{"ev":"note","text":` + string(b) + `}`)
}

func dirSize(dir string) float64 {
	var total int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			total += info.Size()
		}
		return nil
	})
	return float64(total)
}

// fsyncFloorUs is the median of count 4 KiB pwrite + fdatasync at offset 0 of
// a scratch file in dir, in microseconds (workload.rs: fsync_floor_us).
func fsyncFloorUs(dir string, count int) (float64, error) {
	path := filepath.Join(dir, "fsync-floor.tmp")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, err
	}
	defer os.Remove(path)
	defer f.Close()
	block := make([]byte, 4096)
	if _, err := f.WriteAt(block, 0); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	samples := make([]float64, count)
	for i := range samples {
		block[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(block, 0); err != nil {
			return 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, err
		}
		samples[i] = float64(time.Since(t).Nanoseconds()) / 1e3
	}
	sort.Float64s(samples)
	return samples[count/2], nil
}

// ---------------------------------------------------------------- command

type benchParams struct {
	n, individualWrites, batchCommits, batchSize, sample, loadBatch, seed uint64
	threads                                                               int
}

func cmdBench(args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	engine := fs.String("engine", "bbolt", "engine (only bbolt)")
	workload := fs.String("workload", "", "kv | records | sorted | scale")
	dir := fs.String("dir", "", "empty directory for the database files")
	selftest := fs.Bool("selftest", false, "print the deterministic data (must match rivet-bench selftest)")
	var p benchParams
	fs.Uint64Var(&p.n, "n", 1000000, "N")
	fs.Uint64Var(&p.individualWrites, "individual-writes", 1000, "individual durable commits")
	fs.Uint64Var(&p.batchCommits, "batch-commits", 100, "batch commits")
	fs.Uint64Var(&p.batchSize, "batch-size", 1000, "keys per batch commit")
	fs.IntVar(&p.threads, "threads", 4, "reader threads")
	fs.Uint64Var(&p.sample, "sample", 1000, "durable one-record transactions timed in workload 2")
	fs.Uint64Var(&p.loadBatch, "load-batch", 0, "bulk load in transactions of this many keys (0 = one)")
	fs.Uint64Var(&p.seed, "seed", 3, "seed of the random choices")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	if *selftest {
		fmt.Print(benchSelftest())
		return nil
	}
	if *engine != "bbolt" {
		return usageError{fmt.Sprintf("engine %q: the Go peer only runs bbolt", *engine)}
	}
	if *dir == "" {
		return usageError{"-dir is required"}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	var err error
	switch *workload {
	case "kv":
		err = benchKV(*dir, &p)
	case "records":
		err = benchRecords(*dir, &p)
	case "sorted":
		err = benchSorted(*dir, &p)
	case "scale":
		err = benchScale(*dir, &p)
	default:
		return usageError{fmt.Sprintf("unknown workload %q", *workload)}
	}
	if err != nil {
		return err
	}
	emit(`{"ev":"done"}`)
	return nil
}

func benchSelftest() string {
	var s strings.Builder
	for _, i := range []uint64{0, 7, 1000000} {
		k := make([]byte, benchKeyLen)
		v := make([]byte, benchValueLen)
		genKey(i, k)
		fmt.Fprintf(&s, "key %d %x\n", i, k)
		genSortedKey(i, k)
		fmt.Fprintf(&s, "sorted_key %d %x\n", i, k)
		genValue(i, v)
		fmt.Fprintf(&s, "value %d %x\n", i, v)
		u := genUser(i)
		fmt.Fprintf(&s, "record_binary %d %x\n", i, u.encodeBinary())
	}
	sq := seq{3}
	picks := make([]string, 5)
	for i := range picks {
		picks[i] = strconv.FormatUint(sq.below(1000000), 10)
	}
	fmt.Fprintf(&s, "seq 3 %s\n", strings.Join(picks, " "))
	return s.String()
}

func openBench(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(benchBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// putItems loads items lo..hi, in one transaction or in transactions of batch.
func putItems(db *bolt.DB, lo, hi, batch uint64) error {
	step := hi - lo
	if batch > 0 {
		step = batch
	}
	if step == 0 {
		step = 1
	}
	for start := lo; ; start += step {
		end := start + step
		if end > hi {
			end = hi
		}
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(benchBucket)
			for i := start; i < end; i++ {
				kv := make([]byte, benchKeyLen+benchValueLen)
				genKey(i, kv[:benchKeyLen])
				genValue(i, kv[benchKeyLen:])
				if err := b.Put(kv[:benchKeyLen], kv[benchKeyLen:]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || end >= hi {
			return err
		}
	}
}

func getItems(tx *bolt.Tx, lo, hi uint64) error {
	b := tx.Bucket(benchBucket)
	k := make([]byte, benchKeyLen)
	for i := lo; i < hi; i++ {
		genKey(i, k)
		v := b.Get(k)
		if v == nil {
			return fmt.Errorf("item %d missing", i)
		}
		if v[0] != valueCheckByte(i) {
			return fmt.Errorf("item %d: wrong value", i)
		}
	}
	return nil
}

func benchKV(dir string, p *benchParams) error {
	path := filepath.Join(dir, "data.db")
	db, err := openBench(path)
	if err != nil {
		return err
	}
	defer func() { db.Close() }()
	n := p.n
	total := n + p.individualWrites + p.batchCommits*p.batchSize
	if p.loadBatch > 0 {
		emitNote(fmt.Sprintf("bulk load split into transactions of %d keys (fallback: the one-transaction load exceeded the time limit)", p.loadBatch))
	}
	if err := phase("bulk_load", n, func() error { return putItems(db, 0, n, p.loadBatch) }); err != nil {
		return err
	}
	floor, err := fsyncFloorUs(dir, 50)
	if err != nil {
		return err
	}
	emitValue("fsync_floor_us", floor, "us")
	next := n
	if err := phase("individual_writes", p.individualWrites, func() error {
		for i := next; i < next+p.individualWrites; i++ {
			if err := putItems(db, i, i+1, 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	next += p.individualWrites
	if err := phase("batch_writes", p.batchCommits, func() error {
		for c := uint64(0); c < p.batchCommits; c++ {
			lo := next + c*p.batchSize
			if err := putItems(db, lo, lo+p.batchSize, 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := phase("len", 1, func() error {
		return db.View(func(tx *bolt.Tx) error {
			if got := uint64(tx.Bucket(benchBucket).Stats().KeyN); got != total {
				return fmt.Errorf("len = %d, expected %d", got, total)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	reads := n
	if total < reads {
		reads = total
	}
	for round := 1; round <= 2; round++ {
		if err := phase(fmt.Sprintf("random_reads_%d", round), reads, func() error {
			return db.View(func(tx *bolt.Tx) error { return getItems(tx, 0, reads) })
		}); err != nil {
			return err
		}
	}
	scans := n / 2
	if scans == 0 {
		scans = 1
	}
	for round := 1; round <= 2; round++ {
		if err := phase(fmt.Sprintf("range_reads_%d", round), scans, func() error {
			return db.View(func(tx *bolt.Tx) error {
				c := tx.Bucket(benchBucket).Cursor()
				key := make([]byte, benchKeyLen)
				var sum, entries uint64
				for i := uint64(0); i < scans; i++ {
					genKey(i, key)
					k, v := c.Seek(key)
					for j := 0; j < 10 && k != nil; j++ {
						sum += uint64(v[0])
						entries++
						k, v = c.Next()
					}
				}
				if entries < scans {
					return errors.New("range reads returned too few entries")
				}
				_ = sum
				return nil
			})
		}); err != nil {
			return err
		}
	}
	threads := p.threads
	if threads < 1 {
		threads = 1
	}
	if err := phase(fmt.Sprintf("random_reads_%dt", threads), total, func() error {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, threads)
		for t := 0; t < threads; t++ {
			wg.Add(1)
			go func(t int) {
				defer wg.Done()
				lo := total * uint64(t) / uint64(threads)
				hi := total * uint64(t+1) / uint64(threads)
				<-start
				errs[t] = db.View(func(tx *bolt.Tx) error { return getItems(tx, lo, hi) })
			}(t)
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	removed := total / 2
	if err := phase("removals", removed, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(benchBucket)
			k := make([]byte, benchKeyLen)
			for i := uint64(0); i < removed; i++ {
				genKey(i, k)
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}
	emitValue("size_uncompacted", dirSize(dir), "bytes")
	if err := phase("compaction", 1, func() error {
		tmp := filepath.Join(dir, "compact.db")
		dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: openTimeout})
		if err != nil {
			return err
		}
		if err := bolt.Compact(dst, db, 0); err != nil {
			dst.Close()
			return err
		}
		if err := dst.Close(); err != nil {
			return err
		}
		if err := db.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
		return err
	}); err != nil {
		return err
	}
	emitValue("size_compacted", dirSize(dir), "bytes")
	return db.View(func(tx *bolt.Tx) error {
		if got := uint64(tx.Bucket(benchBucket).Stats().KeyN); got != total-removed {
			return fmt.Errorf("after compaction len = %d, expected %d", got, total-removed)
		}
		hi := removed + 1000
		if hi > total {
			hi = total
		}
		return getItems(tx, removed, hi)
	})
}

func benchSorted(dir string, p *benchParams) error {
	db, err := openBench(filepath.Join(dir, "data.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	n := p.n
	if err := phase("sorted_load", n, func() error {
		return db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(benchBucket)
			b.FillPercent = 1.0
			for i := uint64(0); i < n; i++ {
				kv := make([]byte, benchKeyLen+benchValueLen)
				genSortedKey(i, kv[:benchKeyLen])
				genValue(i, kv[benchKeyLen:])
				if err := b.Put(kv[:benchKeyLen], kv[benchKeyLen:]); err != nil {
					return err
				}
			}
			return nil
		})
	}); err != nil {
		return err
	}
	emitValue("size_sorted", dirSize(dir), "bytes")
	return db.View(func(tx *bolt.Tx) error {
		if got := uint64(tx.Bucket(benchBucket).Stats().KeyN); got != n {
			return fmt.Errorf("len = %d, expected %d", got, n)
		}
		return nil
	})
}

func benchScale(dir string, p *benchParams) error {
	db, err := openBench(filepath.Join(dir, "data.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	if p.loadBatch > 0 {
		emitNote(fmt.Sprintf("bulk load split into transactions of %d keys", p.loadBatch))
	}
	if err := phase("bulk_load", p.n, func() error { return putItems(db, 0, p.n, p.loadBatch) }); err != nil {
		return err
	}
	emitValue("size_bulk", dirSize(dir), "bytes")
	return nil
}

// insertRecords inserts records lo..hi in id order, perTx per transaction (0 = one).
func insertRecords(db *bolt.DB, enc string, lo, hi, perTx uint64) error {
	if perTx == 0 {
		perTx = hi - lo
		if perTx == 0 {
			perTx = 1
		}
	}
	for start := lo; start < hi; start += perTx {
		end := start + perTx
		if end > hi {
			end = hi
		}
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(benchBucket)
			for id := start; id < end; id++ {
				u := genUser(id)
				if err := b.Put(recordKey(id), encodeUser(enc, &u)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func benchRecords(dir string, p *benchParams) error {
	n := p.n
	if n < 2 {
		n = 2
	}
	s := p.sample
	if s > n {
		s = n
	}
	if s < 1 {
		s = 1
	}
	emitNote(fmt.Sprintf("records: durable one-record-per-transaction phases are sampled: `single` loads %d records in 10,000-record transactions (untimed) and then times the last %d records one per transaction; `update` times %d read-modify-write transactions", n-s, s, s))
	for _, enc := range []string{"binary", "json"} {
		for _, mode := range []string{"single", "bulk"} {
			sub := filepath.Join(dir, enc+"-"+mode)
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return err
			}
			db, err := openBench(filepath.Join(sub, "data.db"))
			if err != nil {
				return err
			}
			prefix := enc + "_" + mode
			if mode == "single" {
				err = phase("prefill", n-s, func() error { return insertRecords(db, enc, 0, n-s, 10000) })
				if err == nil {
					err = phase(prefix+"_write", s, func() error { return insertRecords(db, enc, n-s, n, 1) })
				}
			} else {
				err = phase(prefix+"_write", n, func() error { return insertRecords(db, enc, 0, n, 0) })
			}
			if err == nil {
				emitValue(prefix+"_storage", dirSize(sub), "bytes")
				err = recordReads(db, enc, n, s, p.seed, prefix)
			}
			db.Close()
			if err != nil {
				return err
			}
			if err := os.RemoveAll(sub); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeChecked(enc string, v []byte, id uint64) (benchUser, error) {
	u, err := decodeUser(enc, v)
	if err != nil {
		return u, fmt.Errorf("record %d: %w", id, err)
	}
	if u.ID != int64(id) {
		return u, fmt.Errorf("record %d: holds id %d", id, u.ID)
	}
	return u, nil
}

func recordReads(db *bolt.DB, enc string, n, s, seed uint64, prefix string) error {
	half := n / 2
	if half == 0 {
		half = 1
	}
	if err := phase(prefix+"_read", half, func() error {
		sq := seq{seed}
		for i := uint64(0); i < half; i++ {
			id := sq.below(n)
			err := db.View(func(tx *bolt.Tx) error {
				v := tx.Bucket(benchBucket).Get(recordKey(id))
				if v == nil {
					return fmt.Errorf("record %d missing", id)
				}
				_, err := decodeChecked(enc, v, id)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := phaseN(prefix+"_read_many", func() (uint64, error) {
		sq := seq{seed ^ 1}
		start := sq.below(n)
		var count uint64
		err := db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(benchBucket).Cursor()
			id := start
			for k, v := c.Seek(recordKey(start)); k != nil && count < half; k, v = c.Next() {
				if _, err := decodeChecked(enc, v, id); err != nil {
					return err
				}
				id++
				count++
			}
			return nil
		})
		if count == 0 {
			count = 1
		}
		return count, err
	}); err != nil {
		return err
	}
	if err := phase(prefix+"_field_sum", n, func() error {
		var sum float64
		var count uint64
		err := db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(benchBucket).ForEach(func(_, v []byte) error {
				u, err := decodeUser(enc, v)
				if err != nil {
					return err
				}
				sum += u.Balance
				count++
				return nil
			})
		})
		if err == nil && count != n {
			err = fmt.Errorf("field sum saw %d records, expected %d", count, n)
		}
		_ = sum
		return err
	}); err != nil {
		return err
	}
	return phase(prefix+"_update", s, func() error {
		sq := seq{seed ^ 2}
		for i := uint64(0); i < s; i++ {
			id := sq.below(n)
			err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket(benchBucket)
				v := b.Get(recordKey(id))
				if v == nil {
					return fmt.Errorf("record %d missing", id)
				}
				u, err := decodeUser(enc, v)
				if err != nil {
					return err
				}
				u.Balance++
				u.UpdatedAt++
				return b.Put(recordKey(id), encodeUser(enc, &u))
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
