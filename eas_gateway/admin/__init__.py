"""What operators use: the `eas-gateway admin` commands and the admin web page."""
