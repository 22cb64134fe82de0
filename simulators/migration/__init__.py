"""pacsim migration."""
