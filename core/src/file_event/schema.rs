//! file_event::schema: the fields detection rules can name, their ECS types, and each
//! [`FileEvent`]'s values for them.

use super::*;

/// The fields rules can name, with their ECS types. The order gives the [`FieldId`]s.
pub const FIELDS: &[(&str, FieldType)] = &[
    ("host.os.type", FieldType::Keyword),
    ("host.name", FieldType::Keyword),
    ("event.action", FieldType::Keyword),
    ("event.category", FieldType::Keyword),
    ("event.type", FieldType::Keyword),
    ("event.kind", FieldType::Keyword),
    ("event.module", FieldType::Keyword),
    ("event.outcome", FieldType::Keyword),
    ("event.sequence", FieldType::Long),
    ("file.path", FieldType::Keyword),
    ("file.name", FieldType::Keyword),
    ("file.directory", FieldType::Keyword),
    ("file.extension", FieldType::Keyword),
    ("file.inode", FieldType::Keyword),
    ("file.device", FieldType::Keyword),
    ("file.type", FieldType::Keyword),
    ("file.uid", FieldType::Keyword),
    ("file.gid", FieldType::Keyword),
    ("process.pid", FieldType::Long),
    ("process.name", FieldType::Keyword),
    ("process.executable", FieldType::Keyword),
    ("process.title", FieldType::Keyword),
    ("process.args", FieldType::Keyword),
    ("process.args_count", FieldType::Long),
    ("process.working_directory", FieldType::Keyword),
    ("process.parent.pid", FieldType::Long),
    ("process.parent.name", FieldType::Keyword),
    ("process.parent.executable", FieldType::Keyword),
    ("user.id", FieldType::Keyword),
    ("user.name", FieldType::Keyword),
    ("user.effective.id", FieldType::Keyword),
    ("user.audit.id", FieldType::Keyword),
    ("user.saved.id", FieldType::Keyword),
    ("user.filesystem.id", FieldType::Keyword),
    ("group.id", FieldType::Keyword),
    ("group.name", FieldType::Keyword),
    ("user.effective.group.id", FieldType::Keyword),
    ("auditd.data.syscall", FieldType::Keyword),
    ("auditd.data.arch", FieldType::Keyword),
    ("tags", FieldType::Keyword),
    ("source.ip", FieldType::Keyword),
    ("source.address", FieldType::Keyword),
    ("wwatchd.parent.world_writable", FieldType::Boolean),
    ("file.Ext.original.path", FieldType::Keyword),
    ("file.Ext.original.name", FieldType::Keyword),
    ("file.Ext.original.extension", FieldType::Keyword),
    // The detector's host, not the record's: the detector answers it (`detector::OnHost`);
    // a bare FileEvent has none.
    ("host.id", FieldType::Keyword),
];

/// The schema rules compile against.
pub struct FileSchema;

impl Schema for FileSchema {
    fn lookup(&self, name: &str) -> Option<(FieldId, FieldType)> {
        FIELDS
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| (FieldId(i as u16), FIELDS[i].1))
    }
}

fn field_index(name: &str) -> u16 {
    FIELDS
        .iter()
        .position(|(n, _)| *n == name)
        .map_or(u16::MAX, |i| i as u16)
}

fn s<'b>(t: &'b Option<Text<'_>>) -> Option<FieldValue<'b>> {
    t.as_ref().map(|t| FieldValue::Str(t.as_str()))
}

fn k<'b>(t: Option<&'b str>) -> Option<FieldValue<'b>> {
    t.map(FieldValue::Str)
}

fn o<'b>(t: &'b Option<String>) -> Option<FieldValue<'b>> {
    t.as_deref().map(FieldValue::Str)
}

impl FieldSource for FileEvent<'_> {
    fn field(&self, id: FieldId) -> Option<FieldValue<'_>> {
        let name = FIELDS.get(usize::from(id.0))?.0;
        match name {
            "host.os.type" => Some(FieldValue::Str("linux")),
            "host.name" => s(&self.host_name),
            "event.action" => Some(FieldValue::Str(self.action.as_str())),
            "event.category" => Some(FieldValue::Str("file")),
            "event.type" => Some(FieldValue::Str(self.action.event_type())),
            "event.kind" => Some(FieldValue::Str("event")),
            "event.module" => Some(FieldValue::Str("auditd")),
            "event.outcome" => Some(FieldValue::Str("success")),
            "event.sequence" => i64::try_from(self.serial).ok().map(FieldValue::Num),
            "file.path" => self.path.as_ref().map(|t| FieldValue::Str(t.as_str())),
            "file.name" => self.file_name.as_ref().map(|t| FieldValue::Str(t.as_str())),
            "file.directory" => self.directory.as_ref().map(|t| FieldValue::Str(t.as_str())),
            "file.extension" => self.extension.as_ref().map(|t| FieldValue::Str(t.as_str())),
            "file.inode" => k(self.inode),
            "file.device" => k(self.device),
            "file.type" => self.file_type().map(FieldValue::Str),
            "file.uid" => k(self.ouid),
            "file.gid" => k(self.ogid),
            "process.pid" => self.pid.map(|p| FieldValue::Num(i64::from(p))),
            "process.name" => s(&self.process_name),
            "process.executable" => s(&self.exe),
            "process.title" => s(&self.title),
            "process.args" => self.args.first().map(|a| FieldValue::Str(a.as_str())),
            "process.args_count" => Some(FieldValue::Num(self.args.len() as i64)),
            "process.working_directory" => s(&self.cwd),
            "process.parent.pid" => self.ppid.map(|p| FieldValue::Num(i64::from(p))),
            "process.parent.name" => o(&self.context.parent_name),
            "process.parent.executable" => o(&self.context.parent_executable),
            "user.id" => k(self.uid),
            "user.name" => s(&self.user_name),
            "user.effective.id" => k(self.euid),
            "user.audit.id" => k(self.auid),
            "user.saved.id" => k(self.suid),
            "user.filesystem.id" => k(self.fsuid),
            "group.id" => k(self.gid),
            "group.name" => s(&self.group_name),
            "user.effective.group.id" => k(self.egid),
            "auditd.data.syscall" => Some(FieldValue::Str(self.syscall)),
            "auditd.data.arch" => Some(FieldValue::Str(self.arch.name())),
            "tags" => s(&self.key),
            "source.ip" => o(&self.context.source_ip),
            "source.address" => o(&self.context.source_address),
            "wwatchd.parent.world_writable" => self
                .parent_mode
                .map(|m| FieldValue::Bool(m & 0o170000 == 0o040000 && m & 0o002 != 0)),
            "file.Ext.original.path" => self.original.as_ref().and_then(|o| s(&o.path)),
            "file.Ext.original.name" => self.original.as_ref().and_then(|o| s(&o.name)),
            "file.Ext.original.extension" => self.original.as_ref().and_then(|o| s(&o.extension)),
            _ => None,
        }
    }

    fn field_multi(&self, id: FieldId, f: &mut dyn FnMut(FieldValue<'_>) -> bool) -> bool {
        if id.0 == field_index("process.args") {
            return self.args.iter().any(|a| f(FieldValue::Str(a.as_str())));
        }
        self.field(id).is_some_and(f)
    }
}
