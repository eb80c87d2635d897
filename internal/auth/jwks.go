package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"
)

// jwks is a cached JSON Web Key Set: re-read every refresh, and when a token names a
// kid it does not know (key rotation), at most once per minRefresh.
type jwks struct {
	url        string
	client     *http.Client
	refresh    time.Duration
	minRefresh time.Duration
	now        func() time.Time

	fetchMu sync.Mutex // one fetch at a time
	mu      sync.Mutex
	keys    []jwk
	fetched time.Time // last attempt (success or not)
	loaded  bool      // keys came from at least one successful fetch
}

type jwk struct {
	kid, alg string
	pub      any // *rsa.PublicKey or *ecdsa.PublicKey
}

// key returns the public key for kid usable with alg.
func (s *jwks) key(ctx context.Context, kid, alg string) (any, error) {
	s.mu.Lock()
	stale := !s.loaded || s.now().Sub(s.fetched) >= s.refresh
	k, found := s.find(kid, alg)
	canRetry := s.now().Sub(s.fetched) >= s.minRefresh
	s.mu.Unlock()
	if stale || (!found && canRetry) {
		if err := s.load(ctx); err != nil && !found {
			return nil, err
		}
		s.mu.Lock()
		k, found = s.find(kid, alg)
		s.mu.Unlock()
	}
	if !found {
		return nil, fmt.Errorf("no key with kid %q for %s in the JWKS", kid, alg)
	}
	return k, nil
}

// find looks kid up (with mu held). A token without a kid matches only when exactly
// one key fits the algorithm.
func (s *jwks) find(kid, alg string) (any, bool) {
	var match any
	n := 0
	for _, k := range s.keys {
		if !fits(k, alg) || (kid != "" && k.kid != kid) {
			continue
		}
		match = k.pub
		n++
	}
	if kid == "" && n != 1 {
		return nil, false
	}
	return match, n > 0
}

// fits reports whether the key may verify alg: its declared alg (if any) must be alg,
// and its type must be the one alg uses.
func fits(k jwk, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case "RS256":
		_, ok := k.pub.(*rsa.PublicKey)
		return ok
	case "ES256":
		ec, ok := k.pub.(*ecdsa.PublicKey)
		return ok && ec.Curve == elliptic.P256()
	}
	return false
}

// load fetches the set, unless another caller fetched it within minRefresh.
func (s *jwks) load(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	s.mu.Lock()
	recent := s.loaded && s.now().Sub(s.fetched) < s.minRefresh
	s.mu.Unlock()
	if recent {
		return nil // someone else just fetched
	}
	keys, err := s.fetch(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched = s.now()
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", s.url, err)
	}
	s.keys, s.loaded = keys, true
	return nil
}

func (s *jwks) fetch(ctx context.Context) ([]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return parseJWKS(body)
}

// parseJWKS reads the RSA and P-256 EC signing keys of a key set; other keys (HMAC
// "oct" keys, encryption keys, other curves) are skipped.
func parseJWKS(body []byte) ([]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	var out []jwk
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		switch k.Kty {
		case "RSA":
			n, err1 := b64(k.N)
			e, err2 := b64(k.E)
			if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
				continue // malformed or under 2048 bits
			}
			eInt := 0
			for _, b := range e {
				eInt = eInt<<8 | int(b)
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, pub: &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: eInt}})
		case "EC":
			if k.Crv != "P-256" {
				continue
			}
			x, err1 := b64(k.X)
			y, err2 := b64(k.Y)
			if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
				continue
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				continue // not on the curve
			}
			out = append(out, jwk{kid: k.Kid, alg: k.Alg, pub: pub})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the JWKS has no usable RS256/ES256 signing key")
	}
	return out, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
