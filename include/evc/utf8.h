/* Strict UTF-8 (RFC 3629, as jansson checks it): the one decoder the link
 * codec, the message codec and the core share. */
#ifndef EVC_UTF8_H
#define EVC_UTF8_H
#include <stddef.h>
#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 if it is not
 * one (stray continuation byte, overlong form, surrogate, above U+10FFFF, or
 * cut short by n). p[0] must be readable (n >= 1). */
size_t utf8_seq(const uint8_t *p, size_t n);
/* 1 if the n bytes at s are all valid UTF-8 (characters counted into
 * *chars when chars is not NULL), else 0. */
int utf8_valid(const char *s, size_t n, size_t *chars);
/* The code point at p (n >= 1 bytes readable) and its length in *len; a
 * byte that does not start a well-formed sequence is U+FFFD, length 1. */
uint32_t utf8_decode(const uint8_t *p, size_t n, size_t *len);

#endif
