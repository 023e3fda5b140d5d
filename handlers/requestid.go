package handlers

import "crypto/rand"

// newRequestID returns a random (version 4) UUID identifying one reboot
// request end to end: method payload, twin, status URL and logs.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return formatUUID(b)
}
