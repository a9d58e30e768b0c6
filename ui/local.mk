# ui: shared screen pieces and the panel (issue 6)
