# tls.mk fragment: TLS contexts and non-blocking steps for the CP link
# (evc/tls.h), on OpenSSL's libssl. Programs linking libevc.a without
# EVC_COMMON_LIBS add $(OPENSSL_LIBS) themselves.
libevc_a_SOURCES += src/common/tls.c include/evc/tls.h
libevc_a_CFLAGS += $(OPENSSL_CFLAGS)
EVC_COMMON_LIBS += $(OPENSSL_LIBS)
