package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
)

// spoolMemBytes is how much of an upload is kept in memory before spooling
// to a temporary file.
const spoolMemBytes = 8 << 20

// spooled is an upload read to the end once, hashed on the way: the remote
// stores need the SHA256 (as metadata, in a header) and the length before
// the first byte is sent, and a seekable body lets the SDKs sign and retry.
type spooled struct {
	mem    *bytes.Reader
	file   *os.File
	size   int64
	sha256 string
	md5    string // hex; S3 compares it with the ETag
}

func spool(ctx context.Context, r io.Reader) (*spooled, error) {
	h, m := sha256.New(), md5.New()
	src := io.TeeReader(ctxReader{ctx, r}, io.MultiWriter(h, m))
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, src, spoolMemBytes+1)
	if err == io.EOF {
		return &spooled{mem: bytes.NewReader(buf.Bytes()), size: n,
			sha256: hex.EncodeToString(h.Sum(nil)), md5: hex.EncodeToString(m.Sum(nil))}, nil
	} else if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "docpipe-upload-*")
	if err != nil {
		return nil, err
	}
	sp := &spooled{file: f}
	if _, err := f.Write(buf.Bytes()); err != nil {
		sp.Close()
		return nil, err
	}
	k, err := io.Copy(f, src)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		sp.Close()
		return nil, err
	}
	sp.size, sp.sha256, sp.md5 = n+k, hex.EncodeToString(h.Sum(nil)), hex.EncodeToString(m.Sum(nil))
	return sp, nil
}

// body returns the content, positioned at its start.
func (s *spooled) body() io.ReadSeeker {
	if s.file != nil {
		return s.file
	}
	return s.mem
}

func (s *spooled) Close() error {
	if s.file != nil {
		err := s.file.Close()
		_ = os.Remove(s.file.Name())
		return err
	}
	return nil
}
