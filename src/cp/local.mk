# fragment for src/cp (issue 4)
