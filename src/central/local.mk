# fragment for src/central (filled by its issue)
