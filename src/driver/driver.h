/* What EV_Driver's screen needs to draw: a read-only view of the driver's
 * state, filled by driver.c on every redraw. */
#ifndef EVC_DRIVER_DRIVER_H
#define EVC_DRIVER_DRIVER_H
#include <stddef.h>

#include "evc/msg.h"
#include "src/driver/svc.h"

struct driver_view {
	const char *user_id;
	const char *file;            /* services file, or NULL */
	const struct svc *svc;
	const struct msg_cp_status *cps; /* latest NETWORK_STATUS_UPDATE (all CPs) */
	size_t ncps;
	double status_at;            /* wall time of that update, 0 if none yet */
	int kafka_up;                /* -1 unknown, 0 down, 1 up */
	double now_mono, now_wall;
};

#endif
