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


class Session:
    """The connections (by name and share) and open handles (by name) of one run."""

    def __init__(self, spec):
        self.spec = spec
        self.lp = s3param.get_context()
        self.lp.load(spec["conf"])
        self.creds = Credentials()
        self.creds.guess(self.lp)
        self.creds.set_username(spec["user"])
        self.creds.set_password(spec["password"])
        self.conns = {}
        self.handles = {}

    def conn(self, op):
        key = (op["conn"], op["share"])
        if key not in self.conns:
            self.conns[key] = libsmb.Conn(self.spec["host"], op["share"], self.lp, self.creds)
        return self.conns[key]

    def open(self, op):
        c = self.conn(op)
        fnum = c.create(Name=op["path"], DesiredAccess=op["access"], ShareAccess=op["share_access"],
                        CreateDisposition=op["disposition"], CreateOptions=op["options"])
        self.handles[op["handle"]] = (c, fnum)
        return fnum

    def write(self, op):
        c, fnum = self.handles[op["handle"]]
        c.write(fnum, buffer=base64.b64decode(op["data"]), offset=op["offset"])

    def read(self, op):
        c, fnum = self.handles[op["handle"]]
        return base64.b64encode(c.read(fnum, op["offset"], op["length"])).decode()

    def close(self, op):
        c, fnum = self.handles.pop(op["handle"])
        c.close(fnum)

    def list(self, op):
        return [{"name": e["name"], "attrib": e["attrib"], "size": e["size"]} for e in self.conn(op).list(op["dir"])]

    def mkdir(self, op):
        self.conn(op).mkdir(op["path"])

    def unlink(self, op):
        self.conn(op).unlink(op["path"])

    def rename(self, op):
        self.conn(op).rename(op["path"], op["to"])

    def run(self, op):
        if op["op"] != "open" and "handle" in op and op["handle"] not in self.handles:
            return {"unopened": op["handle"]}
        try:
            return {"ok": OPS[op["op"]](self, op)}
        except NTSTATUSError as e:
            return {"ntstatus": e.args[0] & 0xFFFFFFFF}


OPS = {"open": Session.open, "write": Session.write, "read": Session.read, "close": Session.close, "list": Session.list,
       "mkdir": Session.mkdir, "unlink": Session.unlink, "rename": Session.rename}


def main():
    spec = json.load(sys.stdin)
    session = Session(spec)
    json.dump([session.run(op) for op in spec["ops"]], sys.stdout)


main()
