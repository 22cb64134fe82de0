"""pacsim sandbox."""
