/* libFuzzer target for the control socket's protocol (src/central/ctlproto.c):
 * the bytes cut into reads of the sizes the input's first byte picks, fed to
 * the bounded line buffer; each line read as a request (the server's verb)
 * and as a line from Central (JSON -> the attached client's picture). A CP
 * the picture took must survive a round trip unchanged, lines stay within
 * the buffer's bound, and the picture stays sorted and bounded.
 */
// fuzz-sources: src/central/ctlproto.c src/common/state.c src/common/msg.c src/common/utf8.c src/common/money.c src/common/xalloc.c src/common/err.c
// fuzz-libs: -ljansson
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/central/ctlproto.h"

#define MAX_LINE 300

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	size_t chunk = (size_t)(data[0] % 17) + 1;
	data++;
	size--;
	struct ctlproto_buf b;
	ctlproto_buf_init(&b, MAX_LINE);
	struct ctlproto_picture pic;
	memset(&pic, 0, sizeof pic);
	for (size_t off = 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		ctlproto_buf_put(&b, (const char *)data + off, n);
		if (b.len - b.ustart > MAX_LINE)
			abort(); /* the unfinished line is kept only within the bound */
		char *line;
		while ((line = ctlproto_buf_line(&b)) != NULL) {
			if (strlen(line) > MAX_LINE)
				abort(); /* a line past the bound came out */
			char verb[32];
			const char *rest = ctlproto_verb(line, verb, sizeof verb);
			if (rest != NULL && strlen(verb) >= sizeof verb)
				abort();
			char err[EVC_ERR_LEN];
			json_t *o = ctlproto_parse(line, err);
			if (o != NULL) {
				if (ctlproto_picture_apply(&pic, o, err) == CTLPROTO_CP) {
					struct cp_view v, w;
					if (ctlproto_cp_from_json(o, &v, err) != 0)
						abort();
					json_t *back = ctlproto_cp_to_json(&v);
					if (ctlproto_cp_from_json(back, &w, err) != 0 || !ctlproto_cp_equal(&v, &w))
						abort();
					json_decref(back);
				}
				json_decref(o);
			}
			free(line);
		}
	}
	for (size_t i = 1; i < pic.ncps; i++)
		if (strcmp(pic.cps[i - 1].id, pic.cps[i].id) >= 0)
			abort(); /* the picture is in id order, no id twice */
	if (pic.ncps > CTLPROTO_CPS_MAX)
		abort();
	ctlproto_picture_free(&pic);
	ctlproto_buf_free(&b);
	return 0;
}
