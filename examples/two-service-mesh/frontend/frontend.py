import os
print("frontend talking to", os.environ.get("BACKEND_URL"))
print("DB_PASSWORD set:", "DB_PASSWORD" in os.environ)
