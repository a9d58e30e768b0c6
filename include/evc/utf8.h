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

/* Unicode letters, digits and simple case come from glibc's C.UTF-8 locale,
 * whatever the process's own locale is (evcharging(7) RULES, Weather).
 * Without it (it ships with libc-bin) only ASCII letters fold and every
 * non-ASCII character counts as a letter. Thread-safe; utf8_fold_ready
 * loads the locale (once) and says whether it is there. */
int utf8_fold_ready(void);
/* Is cp a control character: C0, DEL or C1 (U+0080..U+009F)? */
int utf8_control(uint32_t cp);
/* Is cp a letter or digit? */
int utf8_alnum(uint32_t cp);
/* Is cp part of a word: a letter or digit, a combining diacritic
 * (U+0300..U+036F, which belongs to its letter), or U+FFFD (what a byte that
 * is not UTF-8 decodes to; such bytes counted as letters before). */
int utf8_word_char(uint32_t cp);
/* Does the whole of t (m bytes) equal a prefix of s (n bytes), character
 * by character up to case? The prefix's length in *end. */
int utf8_fold_prefix(const char *s, size_t n, const char *t, size_t m, size_t *end);
/* Are a and b equal up to case? */
int utf8_fold_eq(const char *a, const char *b);

#endif
