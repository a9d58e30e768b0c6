# fragment for src/driver (filled by its issue)
