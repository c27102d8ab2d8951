"""The pages' words in Simplified Chinese (the default) and English: one catalogue per language, same keys.

A small catalogue rather than gettext: the page has a few hundred words, and a test (tests/test_cloud_web.py)
checks that every key the templates and the code use is in both languages, so a page can never show a key
or fall back to the other language half-way. Rule titles come from the rule packs, which carry both.

The language of a request: `?lang=zh|en` (remembered in a cookie), else the cookie, else the browser's
Accept-Language, else `city.language`.

>>> pick("en", None, None, "zh"), pick(None, None, "en-GB,en;q=0.9", "zh"), pick(None, None, "fr", "zh")
('en', 'en', 'zh')
>>> text("zh", "status.fail"), text("en", "status.fail")
('不达标', 'fail')
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")

MESSAGES: dict[str, dict[str, str]] = {
    "zh": {
        "app.title": "教育城域网监测平台",
        "nav.city": "全市概览", "nav.offline": "离线学校", "nav.gaps": "数据缺口", "nav.ingest": "接收统计",
        "nav.api": "接口文档", "nav.logout": "退出", "nav.signed_in": "当前用户",
        "lang.other": "English", "times_in": "时间均为 {zone}",
        "role.viewer": "查看员", "role.operator": "运维员",
        "status.pass": "达标", "status.fail": "不达标", "status.unknown": "未知", "status.port-limited": "端口受限",
        "status.none": "无数据", "status.ok": "成功", "status.refused": "被拒绝", "status.error": "出错",
        "status.timeout": "超时", "status.sent": "已发送", "status.open": "待补", "status.missing": "丢失",
        "state.online": "在线", "state.offline": "离线", "state.silent": "无数据上报", "state.never": "从未上线",
        "state.down": "故障", "state.up": "正常",
        "login.title": "登录", "login.token": "访问令牌", "login.submit": "登录",
        "login.bad": "令牌无效", "login.hint": "请输入城市管理员发放的访问令牌。",
        "city.title": "全市学校网络达标情况", "city.summary": "共 {n} 所学校：{states}",
        "city.by_rule": "各项标准达标情况（学校占比）", "city.by_district": "各区县学校达标情况",
        "city.region": "区域性指标", "city.region_trend": "宽带接入率趋势（近 30 天）",
        "city.failing": "各校达标明细（不达标多者在前）",
        "city.search": "搜索学校名称或编号", "city.all_districts": "全部区县", "city.all_types": "全部类型",
        "city.all_states": "全部状态", "city.filter": "筛选",
        "chart.share": "占比 %", "chart.schools": "学校数", "chart.threshold": "阈值", "chart.city": "全市",
        "col.school": "学校", "col.id": "编号", "col.district": "区县", "col.type": "类型", "col.state": "状态",
        "col.failed_rules": "不达标标准", "col.fails": "不达标项", "col.unknowns": "未知项", "col.rule": "标准",
        "col.region": "区域", "col.status": "结论", "col.value": "测量值", "col.threshold": "要求",
        "col.why": "说明", "col.since": "起始时间", "col.for": "持续", "col.reason": "原因",
        "col.last_seen": "最近上报", "col.device": "设备", "col.kind": "类别", "col.zone": "区域",
        "col.room": "位置", "col.restarts": "重启次数", "col.agent": "采集端", "col.seq_range": "序号范围",
        "col.late": "迟到", "col.open": "待补", "col.missing": "丢失", "col.declared": "采集端声明的缺口",
        "col.time": "时间", "col.severity": "级别", "col.message": "内容", "col.command": "命令",
        "col.answer": "应答", "col.user": "操作人", "col.counter": "计数项", "col.count": "数量",
        "col.topic": "主题", "col.bytes": "字节", "col.detail": "详情", "col.shortfall": "差距",
        "col.judged": "评估时间", "col.counted": "已接入 / 学校数", "col.connections": "连接次数",
        "export.csv": "导出 CSV", "export.xlsx": "导出 Excel",
        "school.title": "学校详情", "school.findings": "达标评估", "school.no_findings": "尚未收到评估结果",
        "school.trends": "近 30 天趋势", "school.devices": "设备（故障在前）", "school.gaps": "数据缺口与重连",
        "school.events": "最近事件", "school.commands": "下发命令", "school.agent": "采集端版本",
        "school.last_seen": "最近上报", "school.births": "连接（上线）次数", "school.measured": "测得 {value}",
        "school.required": "要求 {op} {threshold}", "school.not_measured": "未能测得",
        "school.problems": "需要处理的问题", "school.evidence": "依据", "school.source": "政策依据",
        "school.device_restarts": "设备重启合计", "school.no_devices": "未上报设备清单",
        "school.no_gaps": "没有数据缺口",
        "trend.capacity": "出口带宽测试 (Mbit/s)", "trend.wan": "出口链路利用率 (%)",
        "trend.wifi": "各区域 Wi-Fi 覆盖 (信号良好的终端分钟占比 %)", "trend.availability": "在线率 (%)",
        "trend.min": "最低", "trend.mean": "平均", "trend.max": "最高", "trend.in": "下行", "trend.out": "上行",
        "trend.none": "暂无数据",
        "rule.title": "标准详情", "rule.schools": "各校测量值与要求（最差在前）", "rule.applies": "适用学校类型",
        "rule.unknown": "未知标准", "rule.quote": "原文",
        "offline.title": "离线学校", "offline.summary": "当前不在线的学校：{n} 所（{after}内无上报即视为离线）",
        "offline.never": "从未上线",
        "reason.connection_lost": "连接中断（代理意外断开）", "reason.shutdown": "采集端正常关闭",
        "region.reached": "{n} / {total} 所学校在最近 {days} 天内连接过城市平台",
        "region.no_roster": "未配置学校名单，从未连接的学校不计入（为上限值）",
        "region.none": "本区域没有适用此标准的学校类型", "join.clause": "；",
        "gaps.title": "数据缺口", "ingest.title": "接收统计", "ingest.rejects": "被拒收的消息（最新）",
        "cmd.send": "下发命令", "cmd.rebirth": "重新上报出生信息", "cmd.run_check": "立即执行检查",
        "cmd.check": "检查项", "cmd.sent": "命令已处理：{status}", "cmd.forbidden": "只有运维员可以下发命令",
        "error.not_found": "未找到", "error.no_school": "没有这所学校",
        "dur.d": "{n} 天", "dur.h": "{n} 小时", "dur.min": "{n} 分钟", "dur.s": "{n} 秒",
        "ev.tests": "测试", "ev.count": "次数",
        "ev.statistic": "统计方法", "ev.values": "测试结果", "ev.window": "评估时段",
        "ev.gateway_port": "网关端口", "ev.decided_by": "判定依据", "ev.zones": "区域", "ev.links": "链路",
        "ev.missing": "缺少的数据", "ev.why": "采集端说明", "ev.uplink": "上联", "ev.method": "方法",
        "ev.speed": "协商速率", "ev.ceiling": "可承载上限", "ev.range": "最低 {lo}，中位 {mid}，最高 {hi}",
        "type.primary": "小学", "type.secondary": "中学", "type.nine-year": "九年一贯制学校",
        "type.kindergarten": "幼儿园", "type.teaching-point": "教学点", "type.secondary-vocational": "中职学校",
        "type.vocational-college": "高职院校",
        "op.>=": "≥", "op.>": ">", "op.<=": "≤", "op.<": "<",
        "unit.percent of zones": "% 的区域", "unit.percent of classrooms": "% 的教室",
        "unit.percent of schools": "% 的学校", "unit.devices per person": "台/人",
    },
    "en": {
        "app.title": "City education network monitor",
        "nav.city": "City", "nav.offline": "Offline schools", "nav.gaps": "Gaps", "nav.ingest": "Ingest",
        "nav.api": "API", "nav.logout": "Log out", "nav.signed_in": "Signed in as",
        "lang.other": "中文", "times_in": "Times in {zone}",
        "role.viewer": "viewer", "role.operator": "operator",
        "status.pass": "pass", "status.fail": "fail", "status.unknown": "unknown",
        "status.port-limited": "port-limited",
        "status.none": "no data", "status.ok": "ok", "status.refused": "refused", "status.error": "error",
        "status.timeout": "timeout", "status.sent": "sent", "status.open": "open", "status.missing": "missing",
        "state.online": "online", "state.offline": "offline", "state.silent": "silent", "state.never": "never heard",
        "state.down": "down", "state.up": "up",
        "login.title": "Log in", "login.token": "Access token", "login.submit": "Log in",
        "login.bad": "That token is not valid",
        "login.hint": "Enter the access token the city's administrator gave you.",
        "city.title": "Schools of the city against the standards", "city.summary": "{n} schools: {states}",
        "city.by_rule": "Schools per rule status (share)", "city.by_district": "Schools per district",
        "city.region": "Region rules", "city.region_trend": "Broadband access rate (last 30 days)",
        "city.failing": "Schools and the rules they fail (most first)",
        "city.search": "Search a school's name or id", "city.all_districts": "Every district",
        "city.all_types": "Every type", "city.all_states": "Every state", "city.filter": "Filter",
        "chart.share": "share %", "chart.schools": "schools", "chart.threshold": "threshold", "chart.city": "city",
        "col.school": "School", "col.id": "Id", "col.district": "District", "col.type": "Type", "col.state": "State",
        "col.failed_rules": "Rules failed", "col.fails": "Fails", "col.unknowns": "Unknown", "col.rule": "Rule",
        "col.region": "Region", "col.status": "Status", "col.value": "Value", "col.threshold": "Threshold",
        "col.why": "Why", "col.since": "Since", "col.for": "For", "col.reason": "Reason",
        "col.last_seen": "Last heard", "col.device": "Device", "col.kind": "Kind", "col.zone": "Zone",
        "col.room": "Room", "col.restarts": "Restarts", "col.agent": "Agent", "col.seq_range": "Seq range",
        "col.late": "Late", "col.open": "Open", "col.missing": "Missing", "col.declared": "Declared by the agent",
        "col.time": "Time", "col.severity": "Severity", "col.message": "Message", "col.command": "Command",
        "col.answer": "Answer", "col.user": "By", "col.counter": "Counter", "col.count": "Count",
        "col.topic": "Topic", "col.bytes": "Bytes", "col.detail": "Detail", "col.shortfall": "Shortfall",
        "col.judged": "Judged", "col.counted": "With access / schools", "col.connections": "Connections",
        "export.csv": "CSV", "export.xlsx": "Excel",
        "school.title": "School", "school.findings": "Findings", "school.no_findings": "No findings received yet",
        "school.trends": "Last 30 days", "school.devices": "Devices (down first)", "school.gaps": "Gaps and reconnects",
        "school.events": "Recent events", "school.commands": "Commands", "school.agent": "Agent version",
        "school.last_seen": "Last heard", "school.births": "Connections (births)",
        "school.measured": "measured {value}",
        "school.required": "needs {op} {threshold}", "school.not_measured": "not measured",
        "school.problems": "What to look at", "school.evidence": "Evidence", "school.source": "Source",
        "school.device_restarts": "Device restarts", "school.no_devices": "No device inventory received",
        "school.no_gaps": "No gaps",
        "trend.capacity": "Capacity tests (Mbit/s)", "trend.wan": "WAN utilisation (%)",
        "trend.wifi": "Wi-Fi coverage per zone (% of client-minutes with a good signal)",
        "trend.availability": "Availability (%)",
        "trend.min": "min", "trend.mean": "mean", "trend.max": "max", "trend.in": "in", "trend.out": "out",
        "trend.none": "no data yet",
        "rule.title": "Rule", "rule.schools": "Every school against the threshold (worst first)",
        "rule.applies": "Applies to", "rule.unknown": "No such rule", "rule.quote": "The source's words",
        "offline.title": "Offline schools",
        "offline.summary": "Schools not online now: {n} (not heard from for {after} counts as offline)",
        "offline.never": "never heard from",
        "reason.connection_lost": "connection lost (the agent vanished)", "reason.shutdown": "the agent shut down",
        "region.reached": "{n} of {total} schools reached the city cloud in the last {days} days",
        "region.no_roster": "without a roster, schools that never connected are not counted (an upper bound)",
        "region.none": "no school of the types this rule applies to is known in this region", "join.clause": "; ",
        "gaps.title": "Gaps", "ingest.title": "Ingest", "ingest.rejects": "Refused messages (newest)",
        "cmd.send": "Send a command", "cmd.rebirth": "Ask for a new birth", "cmd.run_check": "Run a check now",
        "cmd.check": "Check", "cmd.sent": "Command answered: {status}",
        "cmd.forbidden": "Only an operator may send commands",
        "error.not_found": "Not found", "error.no_school": "No such school",
        "dur.d": "{n} d", "dur.h": "{n} h", "dur.min": "{n} min", "dur.s": "{n} s",
        "ev.tests": "Tests", "ev.count": "Count",
        "ev.statistic": "Statistic", "ev.values": "Results", "ev.window": "Window",
        "ev.gateway_port": "Gateway port", "ev.decided_by": "Decided by", "ev.zones": "Zones", "ev.links": "Links",
        "ev.missing": "Missing", "ev.why": "The agent says", "ev.uplink": "Uplink", "ev.method": "Method",
        "ev.speed": "Negotiated speed", "ev.ceiling": "Can carry at most",
        "ev.range": "min {lo}, median {mid}, max {hi}",
        "type.primary": "primary", "type.secondary": "secondary", "type.nine-year": "nine-year",
        "type.kindergarten": "kindergarten", "type.teaching-point": "teaching point",
        "type.secondary-vocational": "secondary vocational", "type.vocational-college": "vocational college",
        "op.>=": "≥", "op.>": ">", "op.<=": "≤", "op.<": "<",
        "unit.percent of zones": "% of zones", "unit.percent of classrooms": "% of classrooms",
        "unit.percent of schools": "% of schools", "unit.devices per person": "devices per person",
    },
}


def text(lang: str, key: str, **values: object) -> str:
    """The words for `key` in `lang`, with `{name}` filled in; a missing key is a bug (KeyError)."""
    words = MESSAGES[lang][key]
    return words.format(**values) if values else words


def pick(query: str | None, cookie: str | None, accept: str | None, default: str) -> str:
    """The request's language: ?lang=, the cookie, the first known Accept-Language, else the city's default."""
    for chosen in (query, cookie):
        if chosen in LANGUAGES:
            return chosen
    for part in (accept or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in LANGUAGES:
            return tag[:2]
    return default
