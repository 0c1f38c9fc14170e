"""What every test module shares: starting real Athena processes, waiting for conditions, unpacking errors,
JSON shape assertions and the suite's own throwaway PostgreSQL. Nothing here mocks a component."""
