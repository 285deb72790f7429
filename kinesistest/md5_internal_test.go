package kinesistest

import "crypto/md5"

// appendDigest appends the MD5 of body to b.
func appendDigest(b, body []byte) []byte {
	sum := md5.Sum(body)
	return append(b, sum[:]...)
}
