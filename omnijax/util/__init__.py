"""Small helpers shared across omnijax: argument checks and progress lines."""
