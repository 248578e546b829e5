# Runs a list of SMB operations with Samba's own client library (python3-samba), as Windows'
# VHD driver and Explorer would issue them, and prints one JSON result per operation. Used by
# test/helpers/smb-ops.ts; run with Debian's /usr/bin/python3.
#
# stdin: {"host", "conf", "user", "password", "ops": [...]}, each op a dict with "op" and:
#   open   conn, share, handle, path, access, share_access, disposition, options
#   write  handle, offset, data (base64)
#   read   handle, offset, length
#   close  handle
#   list   conn, share, dir            -> [{"name", "attrib", "size"}]
#   mkdir  conn, share, path
#   unlink conn, share, path
#   rename conn, share, path, to
# stdout: [{"ok": value} | {"ntstatus": code} | {"unopened": handle}] in the same order. A failed
# call is reported by its NTSTATUS code, never its message; the ops after it still run, those on
# a handle whose open failed as "unopened".
import base64
import json
import sys

from samba import NTSTATUSError
from samba.credentials import Credentials
from samba.samba3 import libsmb_samba_internal as libsmb
from samba.samba3 import param as s3param


def main():
    spec = json.load(sys.stdin)
    lp = s3param.get_context()
    lp.load(spec["conf"])
    creds = Credentials()
    creds.guess(lp)
    creds.set_username(spec["user"])
    creds.set_password(spec["password"])
    conns = {}
    handles = {}

    def conn(op):
        key = (op["conn"], op["share"])
        if key not in conns:
            conns[key] = libsmb.Conn(spec["host"], op["share"], lp, creds)
        return conns[key]

    def do_open(op):
        c = conn(op)
        fnum = c.create(Name=op["path"], DesiredAccess=op["access"], ShareAccess=op["share_access"],
                        CreateDisposition=op["disposition"], CreateOptions=op["options"])
        handles[op["handle"]] = (c, fnum)
        return fnum

    def do_write(op):
        c, fnum = handles[op["handle"]]
        c.write(fnum, buffer=base64.b64decode(op["data"]), offset=op["offset"])
        return None

    def do_read(op):
        c, fnum = handles[op["handle"]]
        return base64.b64encode(c.read(fnum, op["offset"], op["length"])).decode()

    def do_close(op):
        c, fnum = handles.pop(op["handle"])
        c.close(fnum)
        return None

    def do_list(op):
        return [{"name": e["name"], "attrib": e["attrib"], "size": e["size"]} for e in conn(op).list(op["dir"])]

    def do_mkdir(op):
        conn(op).mkdir(op["path"])
        return None

    def do_unlink(op):
        conn(op).unlink(op["path"])
        return None

    def do_rename(op):
        conn(op).rename(op["path"], op["to"])
        return None

    table = {"open": do_open, "write": do_write, "read": do_read, "close": do_close, "list": do_list, "mkdir": do_mkdir,
             "unlink": do_unlink, "rename": do_rename}
    results = []
    for op in spec["ops"]:
        if op["op"] != "open" and "handle" in op and op["handle"] not in handles:
            results.append({"unopened": op["handle"]})
            continue
        try:
            results.append({"ok": table[op["op"]](op)})
        except NTSTATUSError as e:
            results.append({"ntstatus": e.args[0] & 0xFFFFFFFF})
    json.dump(results, sys.stdout)


main()
