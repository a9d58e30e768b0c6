# EV_Central (issue 3). core.mk and cplink.mk hold the tests of those modules.
include src/central/core.mk
include src/central/cplink.mk
