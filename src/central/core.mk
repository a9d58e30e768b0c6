# core.mk fragment
