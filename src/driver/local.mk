# EV_Driver: the driver's app, its pure parts unit-tested.
bin_PROGRAMS += EV_Driver
EV_Driver_SOURCES = \
	src/driver/driver.c \
	src/driver/services.c src/driver/services.h \
	src/driver/svc.c src/driver/svc.h \
	ui/driver_screen.c ui/driver_screen.h
EV_Driver_CFLAGS = $(AM_CFLAGS) $(NCURSES_CFLAGS) $(RDKAFKA_CFLAGS) $(JANSSON_CFLAGS) -D_XOPEN_SOURCE_EXTENDED
EV_Driver_LDADD = $(EVC_UI_LIBS) libevc.a $(NCURSES_LIBS) $(RDKAFKA_LIBS) $(JANSSON_LIBS) $(OPENSSL_LIBS) $(EVC_LIB_DEPS) -lm

check_PROGRAMS += tests/unit/test_driver_services tests/unit/test_driver_svc
TESTS += tests/unit/test_driver_services tests/unit/test_driver_svc
tests_unit_test_driver_services_SOURCES = tests/unit/test_driver_services.c \
	src/driver/services.c src/driver/services.h
tests_unit_test_driver_services_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_driver_services_LDADD = $(UNIT_LIBS)
tests_unit_test_driver_svc_SOURCES = tests/unit/test_driver_svc.c \
	src/driver/svc.c src/driver/svc.h
tests_unit_test_driver_svc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_driver_svc_LDADD = $(UNIT_LIBS)

DRIVER_IT = tests/integration/driver_args.sh tests/integration/driver_kcat.sh \
	tests/integration/driver_restart.sh tests/integration/driver_screen.sh \
	tests/integration/e2e_happy.sh tests/integration/e2e_same_cp.sh \
	tests/integration/e2e_fault.sh tests/integration/e2e_stop.sh \
	tests/integration/e2e_central_crash.sh tests/integration/e2e_driver_restart.sh \
	tests/integration/e2e_broker_restart.sh \
	tests/integration/chaos_billing.sh
TESTS += $(DRIVER_IT)
EXTRA_DIST += $(DRIVER_IT)
EXTRA_DIST += tests/integration/e2e_lib.sh
