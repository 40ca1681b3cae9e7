package onnxmodel

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
)

// maxSmallMessage bounds the messages the reader decodes into memory (names,
// value infos, opset ids). Weights are never read this way.
const maxSmallMessage = 16 << 20

// errTruncated is returned when a field runs past the end of its message or file.
var errTruncated = errors.New("truncated")

// wireReader reads protobuf wire format from a stream, tracking the offset so
// that nested messages can be bounded, and skipping unwanted fields without
// keeping their bytes: by seeking when the source can, by discarding otherwise.
type wireReader struct {
	src    io.Reader
	br     *bufio.Reader
	seeker io.Seeker // nil if the source cannot seek
	off    int64     // bytes consumed from the start
	size   int64     // total size if known, else -1
}

func newWireReader(r io.Reader, size int64) *wireReader {
	w := &wireReader{src: r, br: bufio.NewReaderSize(r, 64<<10), size: size}
	if s, ok := r.(io.Seeker); ok {
		w.seeker = s
	}
	return w
}

func (w *wireReader) readByte() (byte, error) {
	b, err := w.br.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, errTruncated
		}
		return 0, err
	}
	w.off++
	return b, nil
}

func (w *wireReader) varint() (uint64, error) {
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		b, err := w.readByte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && b > 1 {
			break // as protobuf: a tenth byte above 1 overflows
		}
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("varint overflows 64 bits at offset %d", w.off)
}

// tag reads the next field tag of a message that ends at end (end < 0: the
// stream's end). ok is false at the end of the message.
func (w *wireReader) tag(end int64) (num protowire.Number, typ protowire.Type, ok bool, err error) {
	if end >= 0 && w.off >= end {
		if w.off > end {
			return 0, 0, false, fmt.Errorf("field overruns its message at offset %d: %w", w.off, errTruncated)
		}
		return 0, 0, false, nil
	}
	if end < 0 {
		if _, err := w.br.Peek(1); err == io.EOF {
			return 0, 0, false, nil
		}
	}
	start := w.off
	v, err := w.varint()
	if err != nil {
		return 0, 0, false, err
	}
	num, typ = protowire.DecodeTag(v)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, 0, false, fmt.Errorf("invalid field number %d at offset %d", num, start)
	}
	return num, typ, true, nil
}

// length reads a length prefix and checks it fits in the enclosing message.
func (w *wireReader) length(end int64) (int64, error) {
	v, err := w.varint()
	if err != nil {
		return 0, err
	}
	limit := end
	if limit < 0 {
		limit = w.size
	}
	if v > 1<<62 || (limit >= 0 && w.off+int64(v) > limit) {
		return 0, fmt.Errorf("field of %d bytes at offset %d runs past its message: %w", v, w.off, errTruncated)
	}
	return int64(v), nil
}

// bytes reads n bytes into memory; n is bounded by maxSmallMessage.
func (w *wireReader) bytes(n int64) ([]byte, error) {
	if n > maxSmallMessage {
		return nil, fmt.Errorf("metadata field of %d bytes at offset %d is larger than the %d-byte limit", n, w.off, maxSmallMessage)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(w.br, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, errTruncated
		}
		return nil, err
	}
	w.off += n
	return buf, nil
}

// skip advances n bytes without keeping them.
func (w *wireReader) skip(n int64) error {
	if buffered := int64(w.br.Buffered()); w.seeker != nil && n > buffered+(1<<20) {
		if _, err := w.seeker.Seek(n-buffered, io.SeekCurrent); err != nil {
			return err
		}
		w.br.Reset(w.src) // drop the buffer; the next read refills from the new position
		w.off += n
		if w.size >= 0 && w.off > w.size {
			return errTruncated
		}
		return nil
	}
	d, err := w.br.Discard(int(n))
	w.off += int64(d)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return errTruncated
		}
		return err
	}
	return nil
}

// skipField skips the value of a field of wire type typ; depth is the
// message nesting it is at (groups nest too).
func (w *wireReader) skipField(num protowire.Number, typ protowire.Type, end int64, depth int) error {
	switch typ {
	case protowire.VarintType:
		_, err := w.varint()
		return err
	case protowire.Fixed32Type:
		return w.skip(4)
	case protowire.Fixed64Type:
		return w.skip(8)
	case protowire.BytesType:
		n, err := w.length(end)
		if err != nil {
			return err
		}
		return w.skip(n)
	case protowire.StartGroupType:
		if depth >= maxDepth {
			return errors.New("exceeded maximum recursion depth")
		}
		for {
			n, t, ok, err := w.tag(end)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("group %d not closed: %w", num, errTruncated)
			}
			if t == protowire.EndGroupType {
				if n != num {
					return fmt.Errorf("group %d closed by end of group %d", num, n)
				}
				return nil
			}
			if err := w.skipField(n, t, end, depth+1); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unexpected wire type %d for field %d at offset %d", typ, num, w.off)
}
