"""Task code for examples/kubernetes/flow.dig: it runs inside the Job's container."""

import platform

import offload_env


def forecast(city: str, days: int) -> None:
    temps = [18 + (len(city) * (i + 3)) % 9 for i in range(int(days))]
    print(f"forecast for {city} in pod {platform.node() or 'a container'}: {temps}")
    offload_env.store(days_forecast=int(days), warmest=max(temps))
