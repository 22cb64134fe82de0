"""pacsim legacy."""
