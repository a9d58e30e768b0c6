# fragment for ui (filled by its issue)
