import os

# API_USER is integrity-protected configuration: printing it is the point.
print("API_USER =", os.environ.get("API_USER", "<not set>"))

# API_PASSWORD is a CAS-generated secret: report only that it is there and how
# long it is, never its value.
password = os.environ.get("API_PASSWORD")
if password is None:
    print("API_PASSWORD is not set")
else:
    print("API_PASSWORD is set (%d characters)" % len(password))
# MARKER-plain-code-7731
