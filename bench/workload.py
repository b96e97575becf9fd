"""A seeded generator of realistic petitions for the benchmarks.

Category mix from DOMAIN.md §4: neighbour disputes 32 %, property management 25 %,
public service 18 %, the rest spread over the other categories, about 2 % emergencies.
Same seed, same petitions.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from engine.commands import FilePetition
from engine.values import Channel, Reporter
from routing_rules import Level, RuleSet, Urgency

MIX: tuple[tuple[str, float], ...] = (
    ("neighbour_dispute", 0.32),
    ("property_dispute", 0.25),
    ("public_service", 0.18),
    ("policy_question", 0.05),
    ("hazard_safety", 0.04),
    ("infrastructure", 0.05),
    ("environment_sanitation", 0.04),
    ("illegal_construction", 0.02),
    ("service_demand", 0.03),
    ("emergency", 0.02),
)

TEXTS: dict[str, tuple[tuple[str, str], ...]] = {
    "neighbour_dispute": (
        ("邻居装修噪音", "楼上邻居每天晚上十点以后还在装修，电钻声很大，家里老人和孩子休息不好。"),
        ("楼道堆放杂物", "对门邻居长期在楼道堆放纸箱和旧家具，影响通行，也有火灾隐患。"),
    ),
    "property_dispute": (
        ("物业费争议", "物业公司今年上调物业费，但小区绿化和保洁没有改善，居民要求公开收支。"),
        ("老旧小区停车难", "小区车位不足，晚上车辆乱停堵住消防通道，希望推行错峰停车、共享车位。"),
    ),
    "public_service": (
        ("社区充电桩不足", "小区只有两个充电桩，电动车主排队充电，希望增设社区充电桩。"),
        ("垃圾分类推进缓慢", "小区垃圾分类桶经常满溢，分类宣传不到位，希望加快推进。"),
    ),
    "policy_question": (
        ("异地就医报销", "父亲在外省住院，想了解异地就医医保报销需要哪些材料和流程。"),
    ),
    "hazard_safety": (("路灯损坏", "村口路灯坏了半个月，晚上路面很黑，老人出行容易摔倒。"),),
    "infrastructure": (("小区电梯故障", "三号楼电梯停运一周，楼上老人下不了楼，物业说要等配件。"),),
    "environment_sanitation": (("河道垃圾", "村边小河漂浮垃圾较多，气味难闻，希望及时清理。"),),
    "illegal_construction": (("楼道违建", "一楼住户在楼道私搭乱建储物间，占用公共空间。"),),
    "service_demand": (
        ("增设社区健身器材", "小区没有健身场地，希望在空地增设社区健身器材，方便老人锻炼。"),
        ("养老助餐", "独居老人做饭困难，希望社区开设养老助餐点。"),
    ),
    "emergency": (("山体滑坡预警", "后山出现裂缝并有落石，担心发生山体滑坡，请尽快派人查看。"),),
}


def petitions(rules: RuleSet, *, seed: int = 2026) -> Iterator[FilePetition]:
    """An endless, deterministic stream of petitions at the rule set's household units."""
    rng = random.Random(seed)
    households = sorted(u.code for u in rules.jurisdiction.units() if u.level is Level.HOUSEHOLD)
    categories = [c for c, _ in MIX if c in rules.categories]
    weights = [w for c, w in MIX if c in rules.categories]
    n = 0
    while True:
        n += 1
        category = rng.choices(categories, weights)[0]
        title, description = rng.choice(TEXTS[category])
        urgency = (
            Urgency.EMERGENCY
            if category == "emergency"
            else (Urgency.URGENT if rng.random() < 0.1 else Urgency.NORMAL)
        )
        yield FilePetition(
            household_unit=rng.choice(households),
            channel=rng.choice(list(Channel)),
            category=category,
            urgency=urgency,
            title=title,
            description=f"{description}（第{n}号）",
            location=f"{rng.randint(1, 30)}号楼{rng.randint(1, 6)}单元",
            reporter=Reporter(name=f"测试居民{n:06d}", phone=f"1390000{n % 10000:04d}"),
        )
