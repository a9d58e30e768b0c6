# man pages (issue 7)
