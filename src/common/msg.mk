# msg.mk fragment
