package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// answer is how the API finally answered one upload (after retries).
type answer struct {
	Status     int    // 200, 202, or the refusal's status; 0 = never answered
	Code       string // the problem's code when refused
	DocumentID uuid.UUID
	JobID      uuid.UUID
	Tries      int
}

// uploader sends documents through POST /v1/documents like a careful client: it
// retries transport errors, 5xx and 429 (after Retry-After) until it gets a final
// answer. Uploading the same bytes again is safe: it returns the same document.
type uploader struct {
	base, key string
	client    *http.Client

	mu       sync.Mutex
	byStatus map[string]int // every answer, retried ones included
	internal []string       // 500 answers: errors the API did not classify
}

func newUploader(base, key string) *uploader {
	return &uploader{base: base, key: key, byStatus: map[string]int{},
		client: &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (u *uploader) note(status string, detail string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byStatus[status]++
	if status == "500" && len(u.internal) < 20 {
		u.internal = append(u.internal, detail)
	}
}

// upload sends d until the API gives a final answer or ctx ends.
func (u *uploader) upload(ctx context.Context, d Doc) answer {
	var a answer
	for ctx.Err() == nil {
		a.Tries++
		status, body, wait, err := u.post(ctx, d)
		if err != nil {
			u.note("transport", "")
			sleep(ctx, 300*time.Millisecond)
			continue
		}
		u.note(strconv.Itoa(status), string(body))
		if status == http.StatusTooManyRequests || status >= 500 {
			sleep(ctx, min(max(wait, 200*time.Millisecond), 5*time.Second))
			continue
		}
		a.Status = status
		if status == http.StatusOK || status == http.StatusAccepted {
			var r struct {
				DocumentID uuid.UUID `json:"document_id"`
				JobID      uuid.UUID `json:"job_id"`
			}
			_ = json.Unmarshal(body, &r)
			a.DocumentID, a.JobID = r.DocumentID, r.JobID
		} else {
			var p struct {
				Code string `json:"code"`
			}
			_ = json.Unmarshal(body, &p)
			a.Code = p.Code
		}
		return a
	}
	return a
}

func (u *uploader) post(ctx context.Context, d Doc) (int, []byte, time.Duration, error) {
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", d.Name)
	if err != nil {
		return 0, nil, 0, err
	}
	_, _ = fw.Write(d.Data)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.base+"/v1/documents", &form)
	if err != nil {
		return 0, nil, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+u.key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, 0, err
	}
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	return resp.StatusCode, body, time.Duration(secs) * time.Second, nil
}

// uploadAll uploads docs, document i at start + i×interval (0: as fast as
// concurrency allows), each in its own goroutine, and returns the answers by index.
func (u *uploader) uploadAll(ctx context.Context, docs []Doc, interval time.Duration, concurrency int) []answer {
	out := make([]answer, len(docs))
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i, d := range docs {
		if interval > 0 && !sleep(ctx, time.Until(start.Add(time.Duration(i)*interval))) {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = u.upload(ctx, d)
		}()
	}
	wg.Wait()
	return out
}

// summary is the answers by status, e.g. "202×95 200×5 503×12 transport×3".
func (u *uploader) summary() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var b bytes.Buffer
	for _, k := range sortedKeys(u.byStatus) {
		fmt.Fprintf(&b, "%s×%d ", k, u.byStatus[k])
	}
	return string(bytes.TrimSpace(b.Bytes()))
}
