package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// KeyPrefix starts every docpipe API key, so a key is recognisable (and tellable from
// a JWT) at a glance and by secret scanners.
const KeyPrefix = "dpk_"

// displayLen is how much of a key is kept in clear to tell keys apart in lists.
const displayLen = len(KeyPrefix) + 8

// DB is what the key store needs (a pool, a connection or a transaction).
type DB interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Keys is the store of service API keys (table upload_pipeline.api_keys). Only the
// SHA-256 of a key is stored; the key itself exists once, in Create's result.
type Keys struct {
	db       DB
	lastUsed sync.Map // key_id → time.Time of the last last_used_at write
}

// NewKeys returns the key store on db.
func NewKeys(db DB) *Keys { return &Keys{db: db} }

// KeyInfo describes a key (never the key itself).
type KeyInfo struct {
	ID         uuid.UUID  `json:"id"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	UserID     *uuid.UUID `json:"user_id,omitempty"`
	Admin      bool       `json:"admin"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
}

// NewKey is what Create makes.
type NewKey struct {
	Name   string
	UserID *uuid.UUID // the tenant the key acts as; required unless Admin
	Admin  bool       // sees and manages every user's documents
}

// IsAPIKey reports whether a credential looks like a docpipe API key.
func IsAPIKey(s string) bool { return strings.HasPrefix(s, KeyPrefix) }

// HashKey is the stored form of a key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Create makes a key and returns it (the only time it is visible) with its record.
func (k *Keys) Create(ctx context.Context, n NewKey) (string, KeyInfo, error) {
	if !n.Admin && (n.UserID == nil || *n.UserID == uuid.Nil) {
		return "", KeyInfo{}, errors.New("a non-admin key needs the user it acts as")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", KeyInfo{}, err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	info := KeyInfo{ID: uuid.Must(uuid.NewV7()), Name: strings.TrimSpace(n.Name), Prefix: key[:displayLen], UserID: n.UserID, Admin: n.Admin}
	err := k.db.QueryRow(ctx, `INSERT INTO upload_pipeline.api_keys (key_id, name, key_prefix, key_sha256, user_id, admin)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`,
		info.ID, info.Name, info.Prefix, HashKey(key), n.UserID, n.Admin).Scan(&info.CreatedAt)
	if err != nil {
		return "", KeyInfo{}, fmt.Errorf("store API key: %w", err)
	}
	return key, info, nil
}

const keySelect = `SELECT key_id, name, key_prefix, user_id, admin, created_at, last_used_at, revoked_at FROM upload_pipeline.api_keys`

func scanKey(row pgx.Row) (KeyInfo, error) {
	var i KeyInfo
	err := row.Scan(&i.ID, &i.Name, &i.Prefix, &i.UserID, &i.Admin, &i.CreatedAt, &i.LastUsedAt, &i.RevokedAt)
	return i, err
}

// List returns the keys, newest first (revoked ones only with includeRevoked).
func (k *Keys) List(ctx context.Context, includeRevoked bool) ([]KeyInfo, error) {
	rows, err := k.db.Query(ctx, keySelect+` WHERE $1 OR revoked_at IS NULL ORDER BY created_at DESC, key_id DESC`, includeRevoked)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyInfo, error) { return scanKey(r) })
}

// ErrKeyNotFound is returned by Revoke for an unknown key.
var ErrKeyNotFound = errors.New("no such API key")

// Revoke disables a key, named by its id or its displayed prefix. Revoking a revoked
// key is not an error.
func (k *Keys) Revoke(ctx context.Context, idOrPrefix string) (KeyInfo, error) {
	id, perr := uuid.Parse(idOrPrefix)
	var idArg *uuid.UUID
	if perr == nil {
		idArg = &id
	}
	rows, err := k.db.Query(ctx, `UPDATE upload_pipeline.api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE key_id = $1 OR ($1::uuid IS NULL AND key_prefix = $2)
		RETURNING key_id, name, key_prefix, user_id, admin, created_at, last_used_at, revoked_at`, idArg, idOrPrefix)
	if err != nil {
		return KeyInfo{}, err
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeyInfo, error) { return scanKey(r) })
	if err != nil {
		return KeyInfo{}, err
	}
	switch len(keys) {
	case 0:
		return KeyInfo{}, fmt.Errorf("%w: %s", ErrKeyNotFound, idOrPrefix)
	case 1:
		return keys[0], nil
	}
	// Prefixes are 48 random bits; a clash is next to impossible, but be exact.
	return keys[0], fmt.Errorf("%d keys share the prefix %s; all were revoked", len(keys), idOrPrefix)
}

// Verify looks a presented key up by its hash. Unknown and revoked keys wrap
// ErrInvalidAPIKey.
func (k *Keys) Verify(ctx context.Context, key string) (Principal, error) {
	if !IsAPIKey(key) || len(key) > 200 {
		return Principal{}, ErrInvalidAPIKey
	}
	info, err := scanKey(k.db.QueryRow(ctx, keySelect+` WHERE key_sha256 = $1`, HashKey(key)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Principal{}, ErrInvalidAPIKey
	} else if err != nil {
		return Principal{}, fmt.Errorf("look up API key: %w", err)
	}
	if info.RevokedAt != nil {
		return Principal{}, fmt.Errorf("%w (revoked %s)", ErrInvalidAPIKey, info.RevokedAt.UTC().Format(time.RFC3339))
	}
	k.touch(ctx, info.ID)
	p := Principal{Admin: info.Admin, Kind: "api_key", ID: "key:" + info.ID.String(), KeyName: info.Name}
	if info.UserID != nil {
		p.UserID = *info.UserID
	}
	return p, nil
}

// touch records last use, at most once a minute per key and process.
func (k *Keys) touch(ctx context.Context, id uuid.UUID) {
	now := time.Now()
	if t, ok := k.lastUsed.Load(id); ok && now.Sub(t.(time.Time)) < time.Minute {
		return
	}
	k.lastUsed.Store(id, now)
	_, _ = k.db.Exec(ctx, `UPDATE upload_pipeline.api_keys SET last_used_at = now() WHERE key_id = $1`, id)
}
