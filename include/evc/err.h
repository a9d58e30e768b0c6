/* Error reporting shared by every module (Redis anet style): a function
 * that can fail returns 0 / -1 (or NULL) and fills the caller's buffer of
 * EVC_ERR_LEN bytes, which it passes first to evc_seterr. */
#ifndef EVC_ERR_H
#define EVC_ERR_H

#define EVC_ERR_LEN 256

/* printf into err (EVC_ERR_LEN bytes); err NULL is fine (nothing kept). */
void evc_seterr(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
