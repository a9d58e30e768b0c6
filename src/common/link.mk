# link.mk fragment
