/* cred_check FILE: load a CP credential file with cred_load (the same
 * checks EV_CP_M and EV_CP_E make) and print "id <cp_id>", or the reason it
 * is refused, exit 1. Never prints the secret. */
#include <stdio.h>

#include "evc/cred.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: cred_check FILE\n");
		return 2;
	}
	struct cred c;
	char err[EVC_ERR_LEN];
	if (cred_load(argv[1], &c, err) == -1) {
		fprintf(stderr, "cred_check: %s\n", err);
		return 1;
	}
	printf("id %s\n", c.cp_id);
	cred_wipe(&c);
	return 0;
}
