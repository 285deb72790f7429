// Package spool keeps accepted records on disk until their result is in, so
// that they survive a crash of the process and outages longer than the
// producer's memory and RecordTTL.
//
// A Spool is a directory of segment files. Append, AppendBatch and
// AppendAsync add records; Next hands them out in order; Ack, DeadLetter and
// Return resolve them. A Forwarder connects a Spool to a *producer.Producer:
// it puts records with PutAsync, acknowledges each one by the result its
// callback reports, writes the ones that failed for good to a dead-letter
// file, and gives the ones the producer gave up on for a passing reason
// (ErrRecordExpired, ErrClosed) back to the spool to be sent again;
// ForwarderOptions.OnResolve sees each of these resolutions.
//
//	s, err := spool.Open(ctx, dir, func(o *spool.Options) { o.MaxBytes = 4 << 30 })
//	fwd, err := spool.NewForwarder(s, prod)
//	go fwd.Run(ctx)                    // until ctx ends
//	_, err = s.Append(ctx, aggregation.Record{PartitionKey: k, Data: d}) // durable on return
//
// # Durability policy (group commit)
//
// Appended records are encoded into the pending batch at once; a single
// committer goroutine writes the batch to the current segment file and
// fsyncs it when the batch's first record is Options.SyncInterval old
// (default 2ms) or the batch holds Options.SyncRecords records (default
// 8192), whichever comes first. Commits never overlap: while one fsync runs
// the next batch fills, so under load one fsync covers everything that
// arrived meanwhile, and any number of concurrent appenders share it.
// Append and AppendBatch return only once their records' batch is fsynced
// (the directory too when the batch created a file); AppendAsync returns at
// once with a Commit to wait for. Options.NoSync skips the fsyncs: records
// then survive a crash of the process (they are in the operating system's
// cache) but not of the machine. Spool.CommitLatency is the histogram of
// what this costs each record: the time from its append call to its
// commit being durable.
//
// Acknowledgements are written with the next commit but not fsynced (Close
// fsyncs them and the directory): after a crash of the machine a few
// delivered records may be delivered again, which the record ids let a
// consumer de-duplicate. After a crash of the process nothing acknowledged
// is replayed, as long as the commit that wrote the acknowledgement had
// run. Dead-letter lines are fsynced (with their file's directory when the
// file is new) before the acknowledgements and segment deletions that
// remove their records.
//
// # Record ids
//
// With Options.AssignIDs (the default) every record appended without an id
// gets one: the spool's producer id (128 random bits, kept in spool.json)
// and the next sequence number. Sequence numbers are reserved in blocks of
// 2^20 in spool.json before use, so a restart continues after the block and
// never reuses a number, even one whose record was torn or already
// deleted. A record that carries an id keeps it. Ids are stored with each
// record, so a replay after a restart puts every record with its original
// id.
//
// # Disk limit
//
// Options.MaxBytes (default 1 GiB) bounds the segment and acknowledgement
// files: a record is admitted with room for its frame and for the 12-byte
// acknowledgement entry it may need (acknowledgements in no order take an
// entry per record). A segment is deleted once every record in it is resolved, so space
// comes back in steps of Options.SegmentSize (default 16 MiB, at most a
// quarter of MaxBytes). At the limit the spool does what Options.WhenFull
// says: Block (the default) makes appends wait until space is freed or
// their context ends, counting each waiting call in Stats.Blocked; Refuse
// makes them fail at once with ErrFull, counted in Stats.Refused. Nothing is
// dropped silently.
//
// # Replay and order
//
// Open recovers the directory a previous process left: it replays every
// record not resolved, in append order, before any new record; Next hands
// out returned records before records not handed out yet. Records wait on
// disk, not in memory: Next reads the segment files, and only the entries
// handed out and not yet resolved (at most ForwarderOptions.MaxInFlight
// with a Forwarder) are in memory.
//
// # Corruption
//
// Every record is framed with its length and a CRC32C checksum. Open scans
// each segment; bytes that are not part of a good frame (a torn last write
// of a killed process, a damaged sector, garbage) are appended to a file
// <segment>.corrupt in the spool directory, counted in Stats.CorruptBytes,
// and cut out of the segment; the good records before and after them are
// replayed. A torn or damaged acknowledgement entry is dropped and counted
// too (its records alone are then delivered again; the entries after a
// damaged one still count). Damage found while running (the files
// changed under the spool) stops Next with an error; reopening recovers.
//
// # On-disk format (version 1)
//
// The directory holds:
//
//	spool.json                 {"version":1,"pid":"<32 hex>","seq_limit":N}
//	LOCK                       flock'ed by the process that has the spool open
//	<20-digit ordinal>.seg     a segment: "KPLSPL1\n", then frames
//	<20-digit ordinal>.ack     its acknowledgement log
//	<20-digit ordinal>.corrupt damaged bytes moved aside by Open
//	dead-letter.jsonl          one DeadLetterRecord per line
//
// A segment's name is the ordinal of its first record. A frame is
//
//	length  uint32 LE            bytes of payload
//	crc     uint32 LE            CRC32C of length and payload
//	payload index uint32 LE      the record's position in its segment
//	        flags uint8          1: has an id; 2: pid stored (else the spool's)
//	        seq uvarint
//	        pid                  uvarint length + bytes, only with flag 2
//	        partition key        uvarint length + bytes
//	        explicit hash key    uvarint length + bytes (empty: none)
//	        data                 uvarint length + bytes
//
// An acknowledgement entry is 12 bytes: first uint32 LE, count uint32 LE and
// the CRC32C of those 8 bytes, meaning records first .. first+count-1 of the
// segment are resolved. Acknowledgements of one commit are sorted and
// merged into ranges, so in-order delivery costs a few bytes per commit.
package spool
