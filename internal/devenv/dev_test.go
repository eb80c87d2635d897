package devenv

import (
	"net"
	"strings"
	"testing"
)

// A taken API address gets a message that says what to do.
func TestDevAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = listen("API", l.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "is in use") || !strings.Contains(err.Error(), "--addr") {
		t.Fatalf("err = %v", err)
	}
}
