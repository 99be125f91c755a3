"""tools_dialogues.py - generated conversations for the `tools` adapter: a
device assistant that answers questions about the machine by calling the
built-in tools of docs/TOOLS.md (names, parameters and result shapes exactly
as there) in Qwen2.5's tool-call format, then answers from the tool result.

Two disjoint phrase banks: TRAIN (templates the adapter is trained on) and
EVAL (other sentence frames and wordings, used only for the held-out sets).
Everything is drawn from a random.Random(seed), so a seed gives the same data.
"""
import copy
import json
import random

UNIT_DESC = "Temperature unit, celsius (default) or fahrenheit."
TOOLS = [
    ("get_cpu_temperature", "Returns the CPU temperature reading of the hottest sensor, in celsius or fahrenheit.",
     {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": UNIT_DESC}}),
    ("get_load_average", "Returns the 1, 5 and 15 minute load averages and the number of CPUs.", {}),
    ("get_memory_usage", "Returns total, used and available memory in MB and the percentage used.", {}),
    ("get_disk_usage", "Returns the total, used and free space in GB of the file system holding a path.",
     {"path": {"type": "string", "description": "A directory on the file system to measure (default /)."}}),
    ("get_uptime", "Returns how long the machine has been running since it booted.", {}),
    ("get_datetime", "Returns the current local date, time, weekday and time zone.", {}),
    ("get_hostname", "Returns the host name of the machine.", {}),
    ("get_network_addresses", "Returns the IPv4 and IPv6 addresses of the network interfaces.",
     {"interface": {"type": "string", "description": "Interface name such as eth0 or wlan0 (all when absent)."}}),
    ("get_top_processes", "Returns the processes using the most CPU or memory, with their pid, name, CPU percent "
     "and memory in MB.",
     {"count": {"type": "integer", "minimum": 1, "maximum": 20, "description": "How many processes (default 5)."},
      "sort_by": {"type": "string", "enum": ["cpu", "memory"], "description": "Sort key, cpu (default) or memory."}}),
]
# other wordings of the descriptions, so the adapter does not depend on one
# exact tools section (a runtime may describe the same tools differently)
ALT_DESC = {
    "get_cpu_temperature": "Read the CPU temperature.",
    "get_load_average": "Get the system load average.",
    "get_memory_usage": "Get RAM usage.",
    "get_disk_usage": "Get disk usage of a mount point.",
    "get_uptime": "Get the system uptime.",
    "get_datetime": "Get the current date and time.",
    "get_hostname": "Get the hostname.",
    "get_network_addresses": "List the IP addresses of this machine.",
    "get_top_processes": "List the top processes by CPU or memory use.",
}


def tool_list(alt=False):
    """The tools list in the OpenAI/Qwen format (what apply_chat_template takes)."""
    out = []
    for name, desc, props in TOOLS:
        out.append({"type": "function", "function": {
            "name": name, "description": ALT_DESC[name] if alt else desc,
            "parameters": {"type": "object", "properties": copy.deepcopy(props), "required": []}}})
    return out


def schemas():
    """name -> JSON schema of the arguments object (for validating calls)."""
    return {n: {"type": "object", "properties": p, "required": [], "additionalProperties": False}
            for n, _, p in TOOLS}


SYSTEMS = [
    None, None, None,
    "You are a helpful assistant.",
    "You are a device assistant running on this computer. Use the tools to answer questions about it.",
    "You are duet, a small assistant on this machine. Answer briefly.",
    "You help the user look after this Linux machine. Call a tool when you need a reading.",
]

# ---- phrase banks ---------------------------------------------------------
# Each intent: TRAIN and EVAL lists of question texts; {x} slots are filled per intent.
Q = {
    "temp": {
        "train": [
            "What is the CPU temperature{unit}?", "What's the cpu temp{unit}?", "How hot is the CPU{unit}?",
            "Tell me the processor temperature{unit}.", "Check the CPU temperature{unit}.",
            "cpu temperature{unit}", "CPU temp{unit}?", "Is the CPU overheating?", "How hot is my processor running{unit}?",
            "Can you read the CPU temperature{unit}?", "What temperature is the CPU at{unit}?",
            "Give me the current CPU temperature{unit}.", "Is the processor too hot?", "temp of the cpu{unit}?",
            "How warm is the CPU{unit}?", "Show the CPU temperature{unit}.", "What does the temperature sensor say{unit}?",
            "Is the machine running hot?", "Check how hot the chip is{unit}.", "What's the temperature of this machine{unit}?",
        ],
        "eval": [
            "I'd like to know the current temperature of my processor{unit}.",
            "Could you find out whether the CPU is getting too warm?",
            "Report the processor's thermal reading{unit}, please.", "How many degrees is the CPU right now{unit}?",
            "Please look up how hot the central processor is{unit}.", "Any idea what temperature the cpu has reached{unit}?",
            "Do a temperature check on the CPU{unit}.", "Need the cpu temperature{unit} asap",
            "Would you tell me how warm the processor is getting{unit}?", "Is my CPU cooking? What's its temperature{unit}?",
            "Temperature reading for the processor{unit}?", "What is the current heat level of the CPU{unit}?",
        ],
    },
    "load": {
        "train": [
            "What is the load average?", "What's the system load?", "How busy is the CPU?", "Show me the load average.",
            "load average?", "Is the machine under heavy load?", "What is the current load on this machine?",
            "Tell me the CPU load.", "How loaded is the system?", "Check the load.", "What's the 15 minute load average?",
            "How much load is the server under?", "Is the system busy right now?", "Give me the load averages.",
        ],
        "eval": [
            "How hard is this computer working at the moment?", "Could you report the system's load figures?",
            "I want to see the 1, 5 and 15 minute load numbers.", "Is the box overloaded right now?",
            "What are the load averages looking like?", "Please check how much work the CPUs are doing.",
            "Tell me whether the system load is high.", "Load numbers for this host?",
        ],
    },
    "mem": {
        "train": [
            "How much memory is used?", "What's the memory usage?", "How much RAM is free?", "Show me the RAM usage.",
            "memory usage?", "How much memory is available?", "Is the machine running out of memory?",
            "How much RAM does this machine have?", "Tell me the memory usage.", "What percentage of memory is used?",
            "Check the RAM.", "How much free memory is there?", "What is the total memory?", "ram usage",
        ],
        "eval": [
            "How much of the RAM is in use at the moment?", "Could you tell me how much memory is left?",
            "Is there enough free RAM for another program?", "I'd like a memory report, please.",
            "What's the state of the system memory?", "How many megabytes of memory can still be used?",
            "Please check whether memory is nearly full.", "Memory stats for this computer?",
        ],
    },
    "disk": {
        "train": [
            "How much disk space is left{on}?", "What's the disk usage{on}?", "Is the disk full{on}?",
            "How much free space is there{on}?", "Show the disk usage{on}.", "disk space{on}?",
            "How much storage is used{on}?", "Check the free disk space{on}.", "How full is the disk{on}?",
            "Tell me the disk usage{on}.", "What percentage of the disk is used{on}?", "How much room is left{on}?",
        ],
        "eval": [
            "Am I running low on storage{on}?", "Could you see how much space remains{on}?",
            "I need to know the free gigabytes{on}.", "What does the file system usage look like{on}?",
            "Please report the used and free space{on}.", "Is there still room for a few gigabytes{on}?",
            "How close to full is the storage{on}?", "Disk capacity report{on}, please.",
        ],
    },
    "uptime": {
        "train": [
            "What is the uptime?", "How long has the machine been running?", "When did the system boot?",
            "How long has this computer been up?", "uptime?", "Show me the uptime.", "How long since the last reboot?",
            "Tell me the uptime.", "How long has the server been on?", "Has the machine been restarted recently?",
        ],
        "eval": [
            "For how much time has this box been powered on without a reboot?", "Could you check the system's uptime?",
            "When was this computer last started?", "I wonder how many days the machine has been up.",
            "How long ago did the system come up?", "Please tell me how long it has been running.",
        ],
    },
    "time": {
        "train": [
            "What time is it?", "What's the date today?", "What day is it?", "What is the current time?",
            "Tell me the date and time.", "What's today's date?", "time?", "What day of the week is it?",
            "Show me the current date.", "What time is it on this machine?", "Which time zone is the clock set to?",
            "What is the date?",
        ],
        "eval": [
            "Do you know what the clock says right now?", "Could you tell me today's date, please?",
            "Which weekday is it today?", "I need the current date and hour.", "What's the system clock showing?",
            "Please give me the local time.",
        ],
    },
    "host": {
        "train": [
            "What is the hostname?", "What's this machine called?", "What is the name of this computer?",
            "hostname?", "Tell me the host name.", "What's the hostname of this box?", "Which machine is this?",
            "Show me the hostname.",
        ],
        "eval": [
            "What name does this computer go by on the network?", "Could you tell me this system's host name?",
            "How is this machine named?", "I need the name of this host.",
        ],
    },
    "net": {
        "train": [
            "What is my IP address{ifc}?", "What's the IP{ifc}?", "Show me the network addresses{ifc}.",
            "What IP address does this machine have{ifc}?", "ip address{ifc}?", "Tell me the IPv4 address{ifc}.",
            "What are the network interfaces' addresses?", "What's the local IP{ifc}?", "List the IP addresses{ifc}.",
            "Which address is {ifn} using?", "What is the IPv6 address{ifc}?", "Is {ifn} connected? What's its IP?",
        ],
        "eval": [
            "Which IP has been assigned{ifc}?", "Could you look up the network address{ifc}?",
            "I need this computer's IP{ifc} to connect to it.", "Print the addresses configured{ifc}.",
            "How can I reach this machine, what's its address{ifc}?", "What address did {ifn} get?",
        ],
    },
    "proc": {
        "train": [
            "What processes are using the most CPU?", "Which programs use the most memory?",
            "Show me the top {n} processes{by}.", "What is using the CPU?", "top processes{by}?",
            "List the {n} biggest processes{by}.", "Which process is eating all the memory?",
            "What are the top {n} processes{by}?", "What's running on this machine?", "Which processes are the busiest{by}?",
            "Show the top processes{by}.", "What is hogging the CPU?", "Give me the {n} heaviest processes{by}.",
        ],
        "eval": [
            "Which {n} programs are taking the most resources{by}?", "Could you find what's slowing the machine down?",
            "I want to see the hungriest processes{by}.", "Name the {n} processes at the top{by}.",
            "What's consuming the most RAM right now?", "Which tasks are keeping the CPU busy?",
            "Please list the {n} most demanding processes{by}.",
        ],
    },
}

# Generic question frames around a noun phrase ({k}); TRAIN and EVAL frames differ.
FRAMES = {
    "train": ["What is the {k}?", "What's the {k}?", "Tell me the {k}.", "Show me the {k}.", "Check the {k}.",
              "Can you check the {k}?", "Give me the {k}.", "{k}?", "{k} please", "I want to know the {k}.",
              "Could you tell me the {k}?", "Get the {k}.", "Read the {k}.", "Let me see the {k}.",
              "Display the {k}.", "How about the {k}?", "Look up the {k}.", "Current {k}?", "Can I get the {k}?",
              "Fetch the {k}.", "Please show the {k}.", "What is the current {k}?", "Do you know the {k}?",
              "Report the {k}.", "Need the {k}.", "What does the {k} say?", "Find the {k}.", "Show the {k} now."],
    "eval": ["I'd like to see the {k}.", "Would you report the {k}?", "Mind checking the {k}?",
             "Quick check of the {k}, please.", "Can you find out the {k}?", "I'm curious about the {k}.",
             "Pull up the {k}.", "Could I have the {k}?", "Let me know the {k}.", "What would the {k} be?"],
}
# Noun phrases per intent, with the argument slot where it goes. TRAIN nouns are
# used by both splits (a person asking about the disk says "disk"); EVAL-only
# nouns add wordings the adapter never saw.
NOUNS = {
    "temp": {"train": ["CPU temperature{unit}", "cpu temp{unit}", "processor temperature{unit}",
                       "temperature of the CPU{unit}", "CPU's temperature{unit}", "chip temperature{unit}",
                       "core temperature{unit}", "thermal reading{unit}", "temperature{unit}", "temp{unit}",
                       "SoC temperature{unit}", "CPU heat{unit}", "heat of the processor{unit}",
                       "temperature of this machine{unit}", "processor temp{unit}", "thermal sensor reading{unit}",
                       "CPU thermals{unit}", "temperature of the chip{unit}"],
             "eval": ["thermal state of the CPU{unit}", "heat level of the chip{unit}", "processor heat{unit}"]},
    "load": {"train": ["load average", "system load", "CPU load", "load", "load averages", "load on the system",
                       "server load", "15 minute load average", "load numbers", "machine load", "CPU utilisation",
                       "CPU usage", "1 minute load", "current load", "load of this box"],
             "eval": ["workload of the machine", "load level", "average load"]},
    "mem": {"train": ["memory usage", "RAM usage", "free memory", "available memory", "memory", "RAM", "used memory",
                      "memory stats", "total memory", "memory consumption", "free RAM", "RAM left", "memory left",
                      "amount of free memory", "memory use", "RAM situation"],
            "eval": ["state of the memory", "remaining RAM", "memory situation"]},
    "disk": {"train": ["disk usage{on}", "disk space{on}", "free disk space{on}", "free space{on}", "storage{on}",
                       "storage usage{on}", "disk{on}", "space left{on}", "used disk space{on}",
                       "file system usage{on}", "remaining storage{on}", "disk capacity{on}", "room on the disk{on}",
                       "free gigabytes{on}", "disk fill{on}", "storage space{on}"],
             "eval": ["storage situation{on}", "disk fill level{on}", "capacity left on disk{on}"]},
    "uptime": {"train": ["uptime", "system uptime", "time since boot", "time since the last reboot",
                         "time since last restart", "running time", "boot time", "uptime of this machine",
                         "time the machine has been up", "days since the last reboot"],
               "eval": ["time since startup", "continuous running time"]},
    "time": {"train": ["time", "date", "current time", "current date", "date and time", "time of day",
                       "day of the week", "weekday", "local time", "clock", "time zone", "today's date",
                       "current hour", "date today"],
             "eval": ["system clock", "present date", "hour and date"]},
    "host": {"train": ["hostname", "host name", "machine name", "name of this machine", "computer name",
                       "name of this computer", "system name", "name of this host", "network name of this box",
                       "name of the device"],
             "eval": ["name of this box", "host's name"]},
    "net": {"train": ["IP address{ifc}", "IP{ifc}", "IP addresses{ifc}", "network addresses{ifc}", "local IP{ifc}",
                      "IPv4 address{ifc}", "IPv6 address{ifc}", "network address{ifc}", "address of this machine",
                      "network interfaces", "IP of this box", "LAN address{ifc}", "addresses{ifc}"],
            "eval": ["assigned address{ifc}", "network configuration{ifc}", "addresses on the network"]},
    "proc": {"train": ["top processes{by}", "processes{by}", "running processes{by}", "busiest processes{by}",
                       "biggest processes{by}", "process list{by}", "top programs{by}", "heaviest processes{by}",
                       "top {n} processes{by}", "{n} busiest processes{by}", "{n} biggest programs{by}",
                       "programs using the most CPU", "processes using the most memory", "tasks using the CPU",
                       "resource hogs", "top {n} memory users", "top {n} CPU users", "process table{by}"],
             "eval": ["hungriest programs{by}", "{n} most demanding tasks{by}", "processes eating resources"]},
}

# which slots each intent's arguments come from
PREFIX = {"train": ["", "", "", "", "", "", "Hey, ", "Hi! ", "Hello. ", "Good morning! ", "Good evening. ",
                    "Please, ", "Quick question: ", "Yo, ", "Hmm, ", "Excuse me, ", "So, ", "Well, ", "OK, ", "ok ",
                    "Can you tell me: ", "I need to know: ", "One thing: ", "Hi there. "],
          "eval": ["", "", "", "Greetings! ", "Hey there, ", "Sorry to bother you, ", "Right, ", "Morning! "]}
SUFFIX = {"train": ["", "", "", "", "", "", " Thanks.", " thanks", " Thank you!", " Cheers.", " please", " right now",
                    " now", " at the moment", " on this machine", " on this box", " if you can"],
          "eval": ["", "", "", " Much appreciated.", " Ta.", " if possible", " when you get a chance", " currently"]}
UNIT_F = {"train": [" in Fahrenheit", " in fahrenheit", " in °F", " in degrees Fahrenheit", " (Fahrenheit)", " in F"],
          "eval": [" using Fahrenheit", " in Fahrenheit degrees", ", Fahrenheit please", " in deg F"]}
UNIT_C = {"train": [" in Celsius", " in celsius", " in °C", " in degrees Celsius", " in C"],
          "eval": [" using Celsius", " in centigrade", ", Celsius please", " in deg C"]}
PATHS = ["/", "/home", "/var", "/boot", "/tmp", "/data", "/srv", "/opt", "/mnt/usb", "/var/log", "/home/pi",
         "/media/backup", "/mnt/data", "/usr", "/boot/firmware", "/var/lib/docker", "/mnt/nas", "/scratch"]
ON = {"train": [" on {p}", " for {p}", " in {p}", " on the {p} partition", " at {p}"],
      "eval": [" under {p}", " where {p} is mounted", " on the volume {p}", " for the {p} file system"]}
ROOT_ON = {"train": [" on the root partition", " on the root file system", " on /"], "eval": [" on the root volume"]}
IFACES = ["eth0", "wlan0", "eth1", "enp3s0", "wlp2s0", "usb0", "end0", "br0", "docker0", "lo", "enp0s31f6", "wlan1",
          "ens33", "tun0", "wg0"]
IFC = {"train": [" on {i}", " of {i}", " for {i}", " of the {i} interface"],
       "eval": [" on interface {i}", " that {i} has", " of adapter {i}"]}
NUM_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
             10: "ten", 12: "twelve", 15: "fifteen", 20: "twenty"}
BY_MEM = {"train": [" by memory", " by RAM", " by memory use", " sorted by memory"],
          "eval": [" ranked by memory", " in terms of RAM"]}
BY_CPU = {"train": [" by CPU", " by cpu usage", " sorted by CPU"], "eval": [" ranked by CPU", " in terms of CPU time"]}

INTENT_TOOL = {"temp": "get_cpu_temperature", "load": "get_load_average", "mem": "get_memory_usage",
               "disk": "get_disk_usage", "uptime": "get_uptime", "time": "get_datetime", "host": "get_hostname",
               "net": "get_network_addresses", "proc": "get_top_processes"}

# a second question joined to a first one ("X and Y?")
JOIN = {"train": [" And ", " Also, ", " Plus: ", " and also ", " ", " Oh and ", "; ", " And what about this: "],
        "eval": [" Additionally, ", " As well: ", " On top of that, "]}
# two noun phrases in one question
PAIR = {"train": ["What are the {a} and the {b}?", "Show me the {a} and {b}.", "{a} and {b}?",
                  "Tell me the {a} and the {b}.", "Check the {a} and the {b}.", "Give me the {a} plus the {b}."],
        "eval": ["I'd like the {a} as well as the {b}.", "Could you report both the {a} and the {b}?"]}


def _rand_path(r):
    if r.random() < 0.75:
        return r.choice(PATHS)
    return "/" + "/".join(r.choice(["mnt", "media", "home", "srv", "data", "var", "backup", "disk2", "ssd", "work",
                                     "photos", "music", "projects", "store", "vol1"]) for _ in range(r.randint(1, 3)))


def _rand_iface(r):
    if r.random() < 0.8:
        return r.choice(IFACES)
    return r.choice(["eth", "wlan", "enp", "wlp", "veth", "usb"]) + str(r.randint(0, 9)) + (
        "s%d" % r.randint(0, 9) if r.random() < 0.3 else "")


def make_question(r, intent, split):
    """Returns (question text, arguments dict) for one intent."""
    if r.random() < 0.55:
        nouns = NOUNS[intent]["train"] + (NOUNS[intent]["eval"] * 3 if split == "eval" else [])
        t = r.choice(FRAMES[split]).replace("{k}", r.choice(nouns))
    else:
        t = r.choice(Q[intent][split])
    return fill_slots(r, t, intent, split)


def fill_slots(r, t, intent, split):
    """Fills a question's {unit} {on} {ifc} {ifn} {n} {by} slots; returns (text, arguments)."""
    args = {}
    if intent == "temp":
        u = r.random()
        if "{unit}" in t and u < 0.35:
            t = t.replace("{unit}", r.choice(UNIT_F[split]))
            args["unit"] = "fahrenheit"
        elif "{unit}" in t and u < 0.5:
            t = t.replace("{unit}", r.choice(UNIT_C[split]))
            args["unit"] = "celsius"
        else:
            t = t.replace("{unit}", "")
    elif intent == "disk":
        u = r.random()
        if u < 0.55:
            p = _rand_path(r)
            if p == "/":
                t = t.replace("{on}", r.choice(ROOT_ON[split]))
            else:
                t = t.replace("{on}", r.choice(ON[split]).replace("{p}", p))
            args["path"] = p
        else:
            t = t.replace("{on}", "")
    elif intent == "net":
        if "{ifn}" in t or ("{ifc}" in t and r.random() < 0.5):
            i = _rand_iface(r)
            t = t.replace("{ifn}", i).replace("{ifc}", r.choice(IFC[split]).replace("{i}", i))
            args["interface"] = i
        else:
            t = t.replace("{ifc}", "")
    elif intent == "proc":
        if "{n}" in t and (r.random() < 0.8 or "{n} " not in t):
            n = r.choice([1, 2, 3, 3, 4, 5, 5, 6, 7, 8, 10, 10, 12, 15, 20])
            words = r.random() < 0.35 and n in NUM_WORDS
            t = t.replace("{n}", NUM_WORDS[n] if words else str(n))
            args["count"] = n
        else:
            t = t.replace("{n} ", "").replace("{n}", "")
        by = r.random()
        if "{by}" in t and by < 0.4:
            t = t.replace("{by}", r.choice(BY_MEM[split]))
            args["sort_by"] = "memory"
        elif "{by}" in t and by < 0.6:
            t = t.replace("{by}", r.choice(BY_CPU[split]))
            args["sort_by"] = "cpu"
        else:
            t = t.replace("{by}", "")
        low = t.lower()
        if "sort_by" not in args and ("memory" in low or "ram" in low.replace("?", " ").split()):
            args["sort_by"] = "memory"
        elif "sort_by" not in args and "cpu" in low:
            args["sort_by"] = "cpu"
        # keep the order count, sort_by as a person would write it
        args = {k: args[k] for k in ("count", "sort_by") if k in args}
    return t, args


def style(r, t, split):
    """Random surface changes: prefix, suffix, casing, punctuation."""
    pre, suf = r.choice(PREFIX[split]), r.choice(SUFFIX[split])
    if pre.endswith(", ") and r.random() < 0.6 and not t.startswith("I ") and not t.startswith("I'"):
        t = t[0].lower() + t[1:]
    if suf[1:2].islower() and t[-1:] in "?.!":
        t = t[:-1] + suf + t[-1]
    else:
        t = t + suf
    t = pre + t
    u = r.random()
    if u < 0.15:
        t = t.lower()
    elif u < 0.2:
        t = t.rstrip("?.!")
    return t.strip()


# ---- tool results and answers ---------------------------------------------
def _f1(x):
    return round(x, 1)


def fake_result(r, name, args):
    """A result object shaped as docs/TOOLS.md says, with random values."""
    if name == "get_cpu_temperature":
        if r.random() < 0.05:
            return {"error": "no temperature sensor"}
        c = r.uniform(30, 88)
        unit = args.get("unit", "celsius")
        v = c * 9 / 5 + 32 if unit == "fahrenheit" else c
        return {"sensor": r.choice(["x86_pkg_temp", "cpu-thermal", "k10temp", "coretemp", "soc_thermal"]),
                "temperature": _f1(v), "unit": unit}
    if name == "get_load_average":
        cpus = r.choice([1, 2, 4, 4, 4, 8, 8, 12, 16])
        l1 = _f1(r.uniform(0, cpus * 1.5)) if r.random() < 0.5 else round(r.uniform(0, cpus * 1.5), 2)
        return {"load1": l1, "load5": round(max(0, l1 + r.uniform(-0.5, 0.5)), 2),
                "load15": round(max(0, l1 + r.uniform(-0.8, 0.4)), 2), "cpus": cpus}
    if name == "get_memory_usage":
        total = r.choice([1024, 1900, 3794, 3906, 7812, 7870, 15842, 16000, 31890, 64000])
        used = int(total * r.uniform(0.05, 0.97))
        return {"total_mb": total, "used_mb": used, "available_mb": total - used,
                "percent_used": _f1(100.0 * used / total)}
    if name == "get_disk_usage":
        p = args.get("path", "/")
        if r.random() < 0.04:
            return {"error": "no such path: %s" % p}
        tot = r.choice([14.6, 29.1, 58.0, 117.2, 234.0, 465.8, 931.5, 1800.0])
        used = _f1(tot * r.uniform(0.02, 0.98))
        return {"path": p, "total_gb": tot, "used_gb": used, "free_gb": _f1(tot - used),
                "percent_used": _f1(100 * used / tot)}
    if name == "get_uptime":
        s = r.choice([r.randint(60, 3600), r.randint(3600, 86400), r.randint(86400, 90 * 86400)])
        return {"seconds": s, "text": uptime_text(s)}
    if name == "get_datetime":
        y, mo, d = r.randint(2024, 2028), r.randint(1, 12), r.randint(1, 28)
        wd = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][
            (y * 365 + mo * 31 + d) % 7]
        return {"date": "%04d-%02d-%02d" % (y, mo, d),
                "time": "%02d:%02d:%02d" % (r.randint(0, 23), r.randint(0, 59), r.randint(0, 59)),
                "weekday": wd, "timezone": r.choice(["UTC", "UTC", "CET", "Europe/London", "America/New_York", "JST"])}
    if name == "get_hostname":
        return {"hostname": r.choice(["raspberrypi", "pi5", "homeserver", "nas", "devbox", "kitchen-pi", "builder",
                                      "thinkpad", "node-%d" % r.randint(1, 40), "edge%02d" % r.randint(1, 99),
                                      "garage-sensor", "media-center", "rpi-%d" % r.randint(1, 9)])}
    if name == "get_network_addresses":
        names = [args["interface"]] if "interface" in args else r.sample(["eth0", "wlan0", "lo", "docker0", "end0"],
                                                                          r.randint(1, 3))
        out = []
        for n in names:
            if n == "lo":
                out.append({"name": "lo", "ipv4": "127.0.0.1", "ipv6": "::1"})
            else:
                e = {"name": n, "ipv4": "%d.%d.%d.%d" % (r.choice([192, 10, 172]), r.randint(0, 255),
                                                         r.randint(0, 255), r.randint(2, 254))}
                if r.random() < 0.7:
                    e["ipv6"] = "fe80::%x:%x" % (r.randint(1, 65535), r.randint(1, 65535))
                out.append(e)
        if "interface" in args and r.random() < 0.05:
            return {"error": "no such interface: %s" % args["interface"]}
        return {"interfaces": out}
    if name == "get_top_processes":
        k = args.get("count", 5)
        key = args.get("sort_by", "cpu")
        procs = []
        for _ in range(k):
            procs.append({"pid": r.randint(1, 40000), "name": r.choice(
                ["python3", "chromium", "firefox", "Xorg", "systemd", "sshd", "node", "nginx", "postgres", "java",
                 "dockerd", "kworker/0:1", "gnome-shell", "bash", "duet", "code", "mysqld", "redis-server", "cron",
                 "pipewire", "containerd", "rsync", "ffmpeg", "gcc", "make"]),
                "cpu_percent": _f1(r.uniform(0, 100) ** 1.0 / (1 if r.random() < 0.3 else 4)),
                "memory_mb": _f1(r.uniform(2, 2000))})
        procs.sort(key=lambda p: -(p["cpu_percent"] if key == "cpu" else p["memory_mb"]))
        return {"processes": procs}
    raise ValueError(name)


def uptime_text(s):
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    parts = []
    if d:
        parts.append("%d day%s" % (d, "" if d == 1 else "s"))
    if h:
        parts.append("%d hour%s" % (h, "" if h == 1 else "s"))
    if m or not parts:
        parts.append("%d minute%s" % (m, "" if m == 1 else "s"))
    return ", ".join(parts)


def _num(x):
    return json.dumps(x)


def answer(r, name, args, res):
    """The assistant's sentence(s) from one result."""
    if "error" in res:
        what = {"get_cpu_temperature": "the CPU temperature", "get_disk_usage": "the disk usage",
                "get_network_addresses": "the network addresses"}.get(name, "that")
        return r.choice(["I could not read %s: %s.", "Sorry, I couldn't get %s (%s).",
                         "Reading %s failed: %s."]) % (what, res["error"])
    if name == "get_cpu_temperature":
        sym = "°F" if res["unit"] == "fahrenheit" else "°C"
        word = "degrees Fahrenheit" if res["unit"] == "fahrenheit" else "degrees Celsius"
        t = _num(res["temperature"])
        hot = res["temperature"] > (176 if res["unit"] == "fahrenheit" else 80)
        s = r.choice(["The CPU temperature is %s %s." % (t, sym), "The CPU is at %s %s." % (t, sym),
                      "The processor is running at %s %s (sensor %s)." % (t, word, res["sensor"]),
                      "%s reads %s %s." % (res["sensor"], t, sym)])
        if hot:
            s += r.choice([" That is hot; check the cooling.", " That is quite hot."])
        elif r.random() < 0.3:
            s += r.choice([" That is a normal temperature.", " Nothing to worry about."])
        return s
    if name == "get_load_average":
        s = r.choice(["The load average is %s (1 min), %s (5 min) and %s (15 min) on %d CPUs.",
                      "Load: %s, %s, %s over 1, 5 and 15 minutes, with %d CPUs.",
                      "The system load is %s over the last minute, %s over 5 minutes and %s over 15 minutes "
                      "(%d CPUs)."]) % (_num(res["load1"]), _num(res["load5"]), _num(res["load15"]), res["cpus"])
        if res["load1"] > res["cpus"]:
            s += " The machine is overloaded: the load is higher than the number of CPUs."
        elif res["load1"] < res["cpus"] * 0.3 and r.random() < 0.5:
            s += " The machine is mostly idle."
        return s
    if name == "get_memory_usage":
        return r.choice([
            "%d MB of %d MB memory is used (%s%%); %d MB is available.",
            "Memory: %d MB used out of %d MB (%s%%), %d MB available.",
            "The machine uses %d MB of its %d MB of RAM (%s%%), leaving %d MB available."]) % (
            res["used_mb"], res["total_mb"], _num(res["percent_used"]), res["available_mb"])
    if name == "get_disk_usage":
        return r.choice([
            "%s: %s GB used of %s GB (%s%%), %s GB free.",
            "On %s, %s GB of %s GB is used (%s%%) and %s GB is free.",
            "The file system holding %s has %s GB used out of %s GB (%s%%); %s GB is free."]) % (
            res["path"], _num(res["used_gb"]), _num(res["total_gb"]), _num(res["percent_used"]), _num(res["free_gb"]))
    if name == "get_uptime":
        return r.choice(["The machine has been up for %s.", "Uptime: %s.",
                         "It has been running for %s since the last boot."]) % res["text"]
    if name == "get_datetime":
        return r.choice(["It is %s on %s, %s (%s).", "The time is %s, %s %s, time zone %s.",
                         "Now it is %s, %s %s (%s)."]) % (res["time"], res["weekday"], res["date"], res["timezone"])
    if name == "get_hostname":
        return r.choice(["This machine is called %s.", "The hostname is %s.", "Its host name is %s."]) % res["hostname"]
    if name == "get_network_addresses":
        parts = []
        for e in res["interfaces"]:
            p = "%s has %s" % (e["name"], e["ipv4"])
            if "ipv6" in e:
                p += " (IPv6 %s)" % e["ipv6"]
            parts.append(p)
        return r.choice(["", "The addresses: ", "Network addresses: "]) + "; ".join(parts) + "."
    if name == "get_top_processes":
        ps = res["processes"]
        key = args.get("sort_by", "cpu")
        items = ["%s (pid %d, %s%% CPU, %s MB)" % (p["name"], p["pid"], _num(p["cpu_percent"]), _num(p["memory_mb"]))
                 for p in ps]
        head = "The top process by %s is " % ("memory" if key == "memory" else "CPU") if len(ps) == 1 else \
            "The top %d processes by %s: " % (len(ps), "memory" if key == "memory" else "CPU")
        return head + ", ".join(items) + "."
    raise ValueError(name)


NO_TOOL = {
    "train": [("Hello!", "Hello! I can check this machine for you: CPU temperature, load, memory, disk space, uptime, "
               "date and time, hostname, network addresses and the top processes."),
              ("Who are you?", "I am a small assistant running on this machine. I can read its temperature, load, "
               "memory, disk usage, uptime, time, hostname, addresses and processes."),
              ("Thanks!", "You're welcome."), ("thank you", "You're welcome!"),
              ("What can you do?", "I can look up facts about this machine with my tools: CPU temperature, load "
               "average, memory, disk usage, uptime, date and time, hostname, IP addresses and top processes."),
              ("Tell me a joke.", "I only know about this machine, not jokes. Ask me about its temperature, memory "
               "or disk space."),
              ("What is the capital of France?", "I can only answer questions about this machine, such as its "
               "load, memory or disk usage.")],
    "eval": [("Good evening", "Good evening! Ask me about this machine: temperature, load, memory, disk, uptime, time, "
              "hostname, addresses or processes."),
             ("What are you able to help with?", "I can look up facts about this machine with my tools: CPU "
              "temperature, load average, memory, disk usage, uptime, date and time, hostname, IP addresses and "
              "top processes.")],
}


def _tools_for(r, needed):
    """The tools list of one conversation: usually all nine in the usual order,
    sometimes shuffled, a subset that holds the needed tools, or other wordings."""
    alt = r.random() < 0.25
    tl = tool_list(alt)
    u = r.random()
    if u < 0.15:
        r.shuffle(tl)
    elif u < 0.3:
        keep = [t for t in tl if t["function"]["name"] in needed or r.random() < 0.6]
        tl = keep
    return tl


def conversation(r, split, intents=None, n_q=None):
    """One dialogue: system (maybe), user question(s), assistant tool call(s),
    tool result(s), assistant answer. Returns {"messages", "tools", "calls"}."""
    if n_q is None:
        n_q = 2 if r.random() < 0.25 else 1
    if intents is None:
        intents = r.sample(sorted(Q), n_q)
    qs, calls = [], []
    pair = len(intents) == 2 and r.random() < 0.35
    for it in intents:
        if pair:
            nouns = NOUNS[it]["train"] + (NOUNS[it]["eval"] * 2 if split == "eval" else [])
            t, a = fill_slots(r, r.choice(nouns), it, split)
        else:
            t, a = make_question(r, it, split)
        qs.append(t)
        calls.append({"name": INTENT_TOOL[it], "arguments": a})
    if pair:
        text = style(r, r.choice(PAIR[split]).replace("{a}", qs[0]).replace("{b}", qs[1]), split)
    elif len(qs) == 1:
        text = style(r, qs[0], split)
    else:
        second = qs[1]
        second = second[0].lower() + second[1:] if r.random() < 0.5 and not second.startswith("I") else second
        text = style(r, qs[0].rstrip("?.!") + ("?" if qs[0].endswith("?") else ".") + r.choice(JOIN[split]) + second,
                     split)
    msgs = []
    sysm = r.choice(SYSTEMS)
    if sysm:
        msgs.append({"role": "system", "content": sysm})
    # sometimes an earlier exchange first
    if r.random() < 0.15:
        it0 = r.choice(sorted(Q))
        t0, a0 = make_question(r, it0, split)
        n0 = INTENT_TOOL[it0]
        res0 = fake_result(r, n0, a0)
        msgs += [{"role": "user", "content": style(r, t0, split)},
                 {"role": "assistant", "content": "", "tool_calls": [
                     {"type": "function", "function": {"name": n0, "arguments": a0}}]},
                 {"role": "tool", "name": n0, "content": json.dumps(res0, separators=(",", ":"))},
                 {"role": "assistant", "content": answer(r, n0, a0, res0)}]
    msgs.append({"role": "user", "content": text})
    msgs.append({"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]})
    outs = []
    for c in calls:
        res = fake_result(r, c["name"], c["arguments"])
        msgs.append({"role": "tool", "name": c["name"], "content": json.dumps(res, separators=(",", ":"))})
        outs.append(answer(r, c["name"], c["arguments"], res))
    msgs.append({"role": "assistant", "content": " ".join(outs)})
    return {"messages": msgs, "tools": _tools_for(r, {c["name"] for c in calls}), "calls": calls}


def no_tool_conversation(r, split):
    q, a = r.choice(NO_TOOL[split])
    msgs = []
    sysm = r.choice(SYSTEMS)
    if sysm:
        msgs.append({"role": "system", "content": sysm})
    msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return {"messages": msgs, "tools": _tools_for(r, set()), "calls": []}


def train_set(seed, n):
    r = random.Random(seed)
    out = []
    for i in range(n):
        out.append(no_tool_conversation(r, "train") if r.random() < 0.04 else conversation(r, "train"))
    return out


def eval_prompts(seed, n):
    """Held-out tool-call prompts: EVAL phrasings only, the question as the last
    user message (no answer), with the expected calls. Every intent, the
    Fahrenheit variant and two-question prompts are represented."""
    r = random.Random(seed)
    out, seen = [], set()
    intents = sorted(Q)
    i = 0
    while len(out) < n:
        if i % 5 == 4:
            c = conversation(r, "eval", n_q=2)
        elif i % 11 == 0:
            c = conversation(r, "eval", intents=["temp"])
        else:
            c = conversation(r, "eval", intents=[intents[i % len(intents)]])
        i += 1
        # cut the dialogue after the user's question
        k = max(j for j, m in enumerate(c["messages"]) if m["role"] == "user")
        msgs = c["messages"][:k + 1]
        key = json.dumps(msgs)
        if key in seen:
            continue
        seen.add(key)
        out.append({"messages": msgs, "tools": tool_list(False), "calls": c["calls"]})
    return out


def eval_dialogues(seed, n):
    """Held-out whole dialogues (EVAL phrasings) for the NLL measurement."""
    r = random.Random(seed)
    return [conversation(r, "eval") for _ in range(n)]
