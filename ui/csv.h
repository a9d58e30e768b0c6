/* RFC 4180 CSV for the panel's :export: fields quoted when they hold a
 * comma, a quote, CR or LF (quotes doubled), rows ended by CRLF, and the
 * file written atomically (a temporary file in the same folder, fsync,
 * rename, fsync of the folder), so a reader never sees half an export and
 * a failed one leaves the old file as it was. No curses here. */
#ifndef EVC_UI_CSV_H
#define EVC_UI_CSV_H
#include <stddef.h>

#include "evc/err.h"

/* A CSV text being built. Zero-initialise; csv_free releases it. */
struct csv_buf {
	char *v;
	size_t n, cap;
	size_t row_fields; /* fields in the row being built */
};

/* Append one field to the current row (NULL = empty field). */
void csv_field(struct csv_buf *b, const char *s);
/* A number with a fixed count of decimals ("%.*f"), as a field. */
void csv_num(struct csv_buf *b, double v, int decimals);
/* End the current row (CRLF). */
void csv_end_row(struct csv_buf *b);
void csv_free(struct csv_buf *b);

/* Write b to path atomically (mode 0600: an audit export is the network's
 * history). The path comes from the operator's command line: one with
 * control characters or longer than 1,023 bytes is refused, and err names
 * it only through csv_safe_name. 0, or -1 with err. */
int csv_write_atomic(const char *path, const struct csv_buf *b, char err[EVC_ERR_LEN]);
/* path made fit for a message: at most 80 bytes, every control character
 * or non-ASCII byte as '?', so no terminal escape reaches the screen. */
void csv_safe_name(const char *path, char *out, size_t len);

#endif
