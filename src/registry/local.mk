# EV_Registry (evcharging(7) SECURITY), its test fixtures, and the test of
# scripts/pki, which makes the certificates every TLS test here uses.
TESTS += tests/integration/pki.sh
EXTRA_DIST += tests/integration/pki.sh
