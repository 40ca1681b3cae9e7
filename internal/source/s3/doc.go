// Package s3 is the S3 model source: it lists a model's versions under an
// s3:// prefix, describes a version's objects (with the checksums needed to
// verify them) and fetches them into a local directory fast, verifying every
// byte. It works with AWS S3 and S3-compatible servers (versitygw, MinIO,
// gofakes3) through aws-sdk-go-v2.
//
// # Layout
//
// A model at s3://bucket/models/resnet/ keeps version N under
// models/resnet/N/ (N as source.ParseVersion reads it; other "directories"
// are ignored). A version may carry tritongate-manifest.json (see
// source.Manifest) with the SHA-256 of every other file; without it, files are
// verified by the MD5 that a single-part upload's ETag is, or by size alone
// for multipart uploads ("-N" ETags; and for SSE-KMS or SSE-C objects,
// whose ETags look like MD5s but are not: detected from the GET response,
// with a warning). Every key's path relative to the version
// must pass source.CheckPath, or the whole version is refused: a listing
// never decides where we write outside the version directory.
//
// # Fetching: one worker pool over parts
//
// Fetch splits every file into parts of Options.PartSize (a small file is
// one part) and runs one bounded pool of Options.Concurrency workers over all
// parts of all files of the version. S3 throughput is per connection (tens of
// MB/s each), so many ranged GETs in flight are what fill a link; one pool
// over parts keeps all connections busy whether the version is one 10 GiB
// model.onnx or ten thousand small files, and bounds connections and memory
// in both cases. Each part is read straight from the response body into a
// large reusable buffer (one copy), written with WriteAt at its offset in a
// preallocated file a MiB at a time as it arrives (while the bytes are still
// in the CPU's cache: one write of the whole part cost 2.5 times the kernel
// CPU here), and handed, in the same buffer, to the file's hasher.
// Memory is about (Concurrency+2) x PartSize (144 MiB with the defaults);
// full-size buffers are kept in a sync.Pool for the next fetch, so the GC
// reclaims them once fetches stop.
//
// # Hashing while downloading
//
// Each file has an in-order hasher (SHA-256 when the manifest gives it, else
// MD5): parts finish out of order, so a finished part whose predecessors are
// not hashed yet waits with its buffer, and whichever worker completes the
// contiguous prefix hashes it and the waiting parts that follow. The hash is
// therefore done a moment after the last byte arrives, with no second pass
// over the file; buffers are taken from the pool in dispatch order, so a
// waiting part never starves the part it waits for. A file is written under a
// temporary dot-name (".model.onnx.tgpart") and renamed to its real name only
// once verified: a file with its real name is always complete and verified.
// A digest mismatch deletes the file and fails the fetch with
// source.ErrDigestMismatch naming the object and both digests.
//
// All GETs of a file must return the same ETag (the listed one when it is an
// MD5), the object's size must still be the described size, and each
// response must be exactly the range asked for: parts of two different
// uploads of an object are never mixed, and an object changed since Describe
// fails the fetch with source.ErrDigestMismatch ("describe it again").
//
// # Errors and retries
//
// Transient failures (5xx, throttling such as SlowDown, connection resets,
// truncated bodies, per-attempt timeouts of Options.RequestTimeout) are
// retried up to Options.Retries times with exponential backoff and full
// jitter; a retried part asks only for the bytes it has not received yet.
// The SDK's own retryer is disabled for these calls so that attempts are not
// multiplied. 403 and 404 are never retried: they map to
// source.ErrAccessDenied and source.ErrNotFound naming the object.
//
// # Resume journal
//
// Fetch keeps a journal, ".tritongate-s3-fetch.journal", in the destination
// directory: a JSON line when a file is started (its path, size, checksum,
// object and part size), one per part written, one when the file is verified
// and renamed. When Fetch runs again on the same directory after an
// interruption (process killed, context cancelled), parts recorded for a file
// whose description still matches are not downloaded again: they are read
// back from disk into the in-order hasher, so a resumed file is still
// verified end to end. If the journal cannot be trusted (unparseable, a file
// missing or of the wrong size, a different description or part size), the
// file starts over; if a resumed file fails verification it is downloaded
// again from scratch, once. Files without a checksum (size only) cannot be
// verified that way, so their parts are journaled only after an fsync
// (batched every 64 MiB): a crash cannot leave a recorded part that is not
// on disk. On success the journal is removed. Only one fetch may use a
// directory at a time. The journal and the ".*.tgpart" files are dot-files:
// the syncer ignores and removes dot-files when it publishes a version, so
// leftovers of a failed fetch are never published.
package s3
