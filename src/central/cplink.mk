# cplink.mk fragment
