# crypto.mk fragment: the shared crypto modules of libevc (crypto.c,
# fernet.c, cred.c; evcharging(7) SECURITY), their unit tests, the Fernet
# vectors and the cross-check against Python's cryptography.fernet.
libevc_a_SOURCES += \
	src/common/crypto.c include/evc/crypto.h \
	src/common/fernet.c include/evc/fernet.h \
	src/common/cred.c include/evc/cred.h
libevc_a_CFLAGS += $(OPENSSL_CFLAGS)

