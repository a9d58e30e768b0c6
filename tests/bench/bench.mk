# bench.mk fragment
