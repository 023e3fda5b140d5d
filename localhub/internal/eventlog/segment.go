package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
)

// A partition is a directory of segment files, <base offset>.seg with the
// offset in 20 decimal digits so names sort in stream order. A segment is
// a header and then records (codec.go):
//
//	0  magic    "EVTSEG"
//	6  version  uint16 LE, 1
//	8  baseSeq  int64 LE   sequence number of its first record
//	16 baseOff  int64 LE   offset of its first record
//	24 prevOff  int64 LE   offset of the partition's record before it, -1: none
//	32 prevTime int64 LE   that record's enqueued time, Unix ms
//	40 reserved uint32     0
//	44 crc      uint32 LE  CRC-32C of bytes 0-43
//
// A record at file position pos has offset baseOff + pos - headerSize:
// offsets are byte positions in the partition's stream of records, so they
// only grow. The header alone says where the partition stands, so the
// newest segment carries the next sequence number and offset across a
// restart even when retention has left it empty of events.
const (
	headerSize    = 48
	formatVersion = 1
	segSuffix     = ".seg"
	// indexInterval is how far apart (in stream bytes) the sparse index
	// remembers a record: a seek scans at most this much of a segment.
	indexInterval = 32 << 10
)

var segMagic = [6]byte{'E', 'V', 'T', 'S', 'E', 'G'}

type segHeader struct {
	baseSeq, baseOff  int64
	prevOff, prevTime int64
}

func (h segHeader) encode() []byte {
	b := make([]byte, headerSize)
	copy(b, segMagic[:])
	binary.LittleEndian.PutUint16(b[6:], formatVersion)
	binary.LittleEndian.PutUint64(b[8:], uint64(h.baseSeq))
	binary.LittleEndian.PutUint64(b[16:], uint64(h.baseOff))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.prevOff))
	binary.LittleEndian.PutUint64(b[32:], uint64(h.prevTime))
	binary.LittleEndian.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
	return b
}

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < headerSize {
		return segHeader{}, errors.New("header incomplete")
	}
	if !bytes.Equal(b[:6], segMagic[:]) {
		return segHeader{}, errors.New("not a segment file")
	}
	if crc32.Checksum(b[:44], castagnoli) != binary.LittleEndian.Uint32(b[44:]) {
		return segHeader{}, errors.New("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[6:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("format version %d, this version reads %d", v, formatVersion)
	}
	h := segHeader{
		baseSeq:  int64(binary.LittleEndian.Uint64(b[8:])),
		baseOff:  int64(binary.LittleEndian.Uint64(b[16:])),
		prevOff:  int64(binary.LittleEndian.Uint64(b[24:])),
		prevTime: int64(binary.LittleEndian.Uint64(b[32:])),
	}
	if h.baseSeq < 0 || h.baseOff < 0 || h.prevOff < -1 {
		return segHeader{}, errors.New("header out of range")
	}
	return h, nil
}

func segName(baseOff int64) string { return fmt.Sprintf("%020d%s", baseOff, segSuffix) }

// indexEntry locates one record.
type indexEntry struct{ seq, off, ms int64 }

// segment is one file. The fields after refs change only under the
// partition's lock, and only by growing.
type segment struct {
	path string
	segHeader
	f *os.File // read handle: ReadAt is safe for concurrent use
	// refs counts the partition's list (one) and readers between acquire
	// and release; whoever drops it to zero closes and, once dropped from
	// the list, deletes the file. Deleting only closed files works on every
	// OS.
	refs    atomic.Int32
	dropped atomic.Bool

	endSeq, endOff  int64 // past the last committed record
	lastOff         int64 // offset of the last record, valid if not empty
	firstMs, lastMs int64 // enqueued times of the first and last record
	index           []indexEntry
	nextIndexOff    int64
}

func (s *segment) empty() bool { return s.endSeq == s.baseSeq }

func (s *segment) acquire() { s.refs.Add(1) }

func (s *segment) release() {
	if s.refs.Add(-1) > 0 {
		return
	}
	_ = s.f.Close()
	if s.dropped.Load() {
		_ = os.Remove(s.path)
	}
}

// drop takes the segment out of use; the file goes once no reader has it.
func (s *segment) drop() {
	s.dropped.Store(true)
	s.release()
}

// add records a committed record. Callers hold the partition's lock.
func (s *segment) add(seq, off int64, size int, ms int64) {
	if s.empty() {
		s.firstMs = ms
	}
	if off >= s.nextIndexOff {
		s.index = append(s.index, indexEntry{seq, off, ms})
		s.nextIndexOff = off + indexInterval
	}
	s.endSeq, s.endOff = seq+1, off+int64(size)
	s.lastOff, s.lastMs = off, ms
}

// createSegment makes a new, durable, empty segment and returns it with a
// handle to append to it.
func createSegment(dir string, h segHeader) (*segment, *os.File, error) {
	path := filepath.Join(dir, segName(h.baseOff))
	w, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if _, err = w.Write(h.encode()); err == nil {
		if err = w.Sync(); err == nil {
			err = syncDir(dir)
		}
	}
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	r, err := os.Open(path)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	return newSegment(path, h, r), w, nil
}

func newSegment(path string, h segHeader, r *os.File) *segment {
	s := &segment{path: path, segHeader: h, f: r, endSeq: h.baseSeq, endOff: h.baseOff, nextIndexOff: h.baseOff, lastOff: -1}
	s.refs.Store(1)
	return s
}

// readAt reads stream bytes [off, off+len(b)) of the segment.
func (s *segment) readAt(b []byte, off int64) error {
	_, err := s.f.ReadAt(b, headerSize+off-s.baseOff)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: segment %s ends early", ErrCorrupt, filepath.Base(s.path))
	}
	return err
}

// scan calls fn for each record from stream offset off (a record start)
// until end or until fn returns false. It reads through buf, up to its
// capacity at a time, unless a record needs more.
func (s *segment) scan(buf []byte, off, end int64, fn func(off int64, fr frame) bool) error {
	buf = buf[:cap(buf)]
	data := buf[:0] // stream bytes [off, off+len(data))
	for off < end {
		fr, err := parseFrame(data)
		if errors.Is(err, errShortRecord) {
			readFrom := off + int64(len(data))
			if readFrom >= end {
				return fmt.Errorf("segment %s: %w: the record at offset %d is cut short at offset %d", filepath.Base(s.path), ErrCorrupt, off, end)
			}
			need := len(data) + frameHeaderSize
			if len(data) >= frameHeaderSize {
				need = frameHeaderSize + int(binary.LittleEndian.Uint32(data))
			}
			if need > len(buf) {
				buf = make([]byte, need) // parseFrame bounded the length
			}
			kept := copy(buf, data) // the start of the record, to the front
			n := int(min(int64(len(buf)-kept), end-readFrom))
			if err := s.readAt(buf[kept:kept+n], readFrom); err != nil {
				return err
			}
			data = buf[:kept+n]
			continue
		}
		if err != nil {
			return fmt.Errorf("segment %s offset %d: %w", filepath.Base(s.path), off, err)
		}
		if !fn(off, fr) {
			return nil
		}
		off += int64(fr.size)
		data = data[fr.size:]
	}
	return nil
}

// recovered is what openSegments found in a partition directory.
type recovered struct {
	segs   []*segment
	writer *os.File // appends to the last segment
}

// openSegments opens a partition's segments, checking every record, and
// repairs the damage a crash or a bad disk can leave: a torn or corrupt
// tail is cut back to the last complete append, a segment whose header is
// unreadable is set aside (renamed *.corrupt), each with a warning. Only
// I/O errors fail it.
func openSegments(dir string, logger *slog.Logger) (_ recovered, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return recovered{}, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return recovered{}, err
	}
	var names []string
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, segSuffix) && !e.IsDir() {
			names = append(names, name)
		}
	}
	sort.Strings(names)

	var segs []*scannedSegment
	defer func() {
		if err != nil {
			for _, s := range segs {
				s.release()
			}
		}
	}()
	buf := make([]byte, 1<<20)
	for i, name := range names {
		path := filepath.Join(dir, name)
		last := i == len(names)-1
		s, reason, err := openSegment(path, buf)
		if err != nil {
			return recovered{}, err
		}
		if s != nil && len(segs) > 0 {
			if prev := segs[len(segs)-1]; s.baseSeq < prev.endSeq || s.baseOff < prev.endOff {
				reason = fmt.Sprintf("starts at sequence number %d offset %d, inside the segment before it", s.baseSeq, s.baseOff)
				s.release()
				s = nil
			}
		}
		if s == nil {
			if err := setAside(path, last, reason, logger); err != nil {
				return recovered{}, err
			}
			continue
		}
		segs = append(segs, s)
		if s.goodLen < s.fileLen {
			logger.Warn("events log: cut a damaged tail back to the last complete append",
				"file", name, "kept", s.goodLen, "dropped", s.fileLen-s.goodLen, "reason", s.damage)
			if err := truncateFile(path, s.goodLen); err != nil {
				return recovered{}, err
			}
		}
	}
	var r recovered
	if len(segs) == 0 {
		if len(names) > 0 {
			logger.Warn("events log: no readable segment left; the partition starts again from sequence number 0", "dir", filepath.Base(dir))
		}
		s, w, err := createSegment(dir, segHeader{prevOff: -1})
		if err != nil {
			return recovered{}, err
		}
		return recovered{segs: []*segment{s}, writer: w}, nil
	}
	r.segs = make([]*segment, len(segs))
	for i, s := range segs {
		r.segs[i] = s.segment
	}
	last := r.segs[len(r.segs)-1]
	if r.writer, err = os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return recovered{}, err
	}
	return r, nil
}

// scannedSegment is a segment with what its recovery scan found.
type scannedSegment struct {
	*segment
	fileLen, goodLen int64 // file positions
	damage           string
}

// openSegment reads and checks one segment. A nil segment with a reason
// means the file is not usable as a segment.
func openSegment(path string, buf []byte) (*scannedSegment, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, "", err
	}
	hb := make([]byte, headerSize)
	if _, err := io.ReadFull(f, hb); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, "", err
	}
	h, herr := decodeSegHeader(hb)
	if herr == nil && filepath.Base(path) != segName(h.baseOff) {
		herr = fmt.Errorf("header says offset %d", h.baseOff)
	}
	if herr != nil {
		f.Close()
		return nil, herr.Error(), nil
	}
	s := &scannedSegment{segment: newSegment(path, h, f), fileLen: st.Size(), goodLen: headerSize}
	// Check every record: checksum, sequence continuity, time order. The
	// segment ends after the last record that completes an append; an
	// append cut short by a crash was never acknowledged.
	end := h.baseOff + st.Size() - headerSize
	nextSeq, lastMs := h.baseSeq, h.prevTime
	type pending struct {
		seq, off, ms int64
		size         int
	}
	var batch []pending
	err = s.scan(buf, h.baseOff, end, func(off int64, fr frame) bool {
		switch {
		case fr.seq != nextSeq:
			s.damage = fmt.Sprintf("sequence number %d where %d was due", fr.seq, nextSeq)
			return false
		case fr.timeMs < lastMs:
			s.damage = fmt.Sprintf("enqueued time goes back at sequence number %d", fr.seq)
			return false
		}
		nextSeq, lastMs = fr.seq+1, fr.timeMs
		batch = append(batch, pending{fr.seq, off, fr.timeMs, fr.size})
		if fr.flags&flagMore == 0 {
			for _, r := range batch {
				s.add(r.seq, r.off, r.size, r.ms)
			}
			batch = batch[:0]
			s.goodLen = headerSize + s.endOff - h.baseOff
		}
		return true
	})
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			s.release()
			return nil, "", err
		}
		s.damage = err.Error()
	}
	if s.damage == "" && len(batch) > 0 {
		s.damage = "the last append is incomplete"
	}
	if s.damage == "" && s.goodLen < s.fileLen {
		s.damage = "a record is cut short"
	}
	return s, "", nil
}

// setAside handles a segment file whose header is unusable. The newest
// segment's header is written when the segment is created, before any of
// its records: if that is what a crash cut short, nothing in it was ever
// acknowledged and the file goes. Any other such file is kept for
// inspection under another name.
func setAside(path string, last bool, reason string, logger *slog.Logger) error {
	name := filepath.Base(path)
	if last {
		if st, err := os.Stat(path); err == nil && st.Size() <= headerSize {
			logger.Warn("events log: removed a segment cut short while it was being created", "file", name, "reason", reason)
			return os.Remove(path)
		}
	}
	logger.Warn("events log: set aside an unreadable segment; its events are lost", "file", name, "reason", reason, "renamedTo", name+".corrupt")
	return os.Rename(path, path+".corrupt")
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
