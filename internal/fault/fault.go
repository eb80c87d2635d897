// Package fault classifies pipeline errors as transient (retry with backoff) or
// permanent (fail now), each with a stable machine-readable code and a message a
// person understands.
package fault

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Kind says whether retrying can help.
type Kind int

const (
	// Transient errors (timeouts, rate limits, 5xx, lost connections) are retried.
	Transient Kind = iota + 1
	// Permanent errors (bad content, unsupported type, auth) fail the stage now.
	Permanent
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// Error is a classified error.
type Error struct {
	Kind    Kind
	Code    string // stable, upper snake case, e.g. PDF_CORRUPT
	Message string // for people; never contains secrets
	Err     error  // optional cause
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Permanentf returns a permanent error with the given code.
func Permanentf(code, format string, args ...any) *Error {
	return &Error{Kind: Permanent, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Transientf returns a transient error with the given code.
func Transientf(code, format string, args ...any) *Error {
	return &Error{Kind: Transient, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies err with a code and message, keeping it as the cause.
func Wrap(kind Kind, code string, err error, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...), Err: err}
}

// Classify returns the classified form of err. Unclassified errors are treated as
// transient (a bug or an outage is worth another attempt; the attempt limit bounds it),
// except context cancellation, which is transient too (the job is picked up again).
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: Transient, Code: "TIMEOUT", Message: "the operation timed out", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Kind: Transient, Code: "CANCELED", Message: "the operation was interrupted", Err: err}
	case errors.As(err, &ne):
		return &Error{Kind: Transient, Code: "NETWORK", Message: "a network call failed", Err: err}
	}
	return &Error{Kind: Transient, Code: "INTERNAL", Message: "unexpected error", Err: err}
}

// IsPermanent reports whether err is classified permanent.
func IsPermanent(err error) bool {
	return err != nil && Classify(err).Kind == Permanent
}

// CodeOf is the code of the first *Error in err's chain, or "".
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
