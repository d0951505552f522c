package parse

import (
	"strings"
	"testing"
	"time"
)

func TestVisibleText(t *testing.T) {
	const reply = "Fixed, thanks."
	tests := []struct{ name, in, want string }{
		{"gmail english", reply + "\n\nOn Mon, Apr 2, 2012 at 6:26 PM, Megan <m@x.com> wrote:\n> Hi\n", reply},
		{"gmail wrapped attribution", reply + "\n\nOn Tue, Sep 25, 2012 at 8:59 AM, Chris Wanstrath\n<notifications@github.com>wrote:\n\n> Steps\n", reply},
		{"german gmail", reply + "\n\nAm Mo., 3. März 2025 um 10:15 Uhr schrieb Desk <d@x.de>:\n> Hallo\n", reply},
		{"apple mail german", reply + "\n\n> Am 03.03.2025 um 10:15 schrieb Desk <d@x.de>:\n> \n> Hallo\n", reply},
		{"french", reply + "\n\nLe lun. 3 mars 2025 à 10:15, Desk <d@x.fr> a écrit :\n> Bonjour\n", reply},
		{"spanish", reply + "\n\nEl lun, 3 mar 2025 a las 10:15, Desk (<d@x.es>) escribió:\n> Hola\n", reply},
		{"dutch", reply + "\n\nOp ma 3 mrt. 2025 om 10:15 schreef Desk <d@x.nl>:\n> Hoi\n", reply},
		{"italian", reply + "\n\nIl giorno lun 3 mar 2025 alle ore 10:15 Desk <d@x.it> ha scritto:\n> Ciao\n", reply},
		{"portuguese", reply + "\n\nEm seg., 3 de mar. de 2025 às 10:15, Desk <d@x.br> escreveu:\n> Olá\n", reply},
		{"swedish", reply + "\n\nDen mån 3 mars 2025 kl 10:15 skrev Desk <d@x.se>:\n> Hej\n", reply},
		{"polish", reply + "\n\npon., 3 mar 2025 o 10:15 Desk <d@x.pl> napisał(a):\n> Cześć\n", reply},
		{"russian", reply + "\n\nпн, 3 мар. 2025 г. в 10:15, Desk <d@x.ru>:\n> Привет\n", reply},
		{"japanese", reply + "\n\n2025年3月3日(月) 10:15 Desk <d@x.jp>:\n> こんにちは\n", reply},
		{"chinese", reply + "\n\n在 2025年3月3日 10:15，Desk <d@x.cn> 写道：\n> 你好\n", reply},
		{"outlook english", reply + "\n\n________________________________\nFrom: Desk <d@x.com>\nSent: Monday, March 3, 2025 10:15 AM\nTo: Me\nSubject: Ticket\n\nOld text\n", reply},
		{"outlook bold", reply + "\n\n*From:* Desk [mailto:d@x.com]\n*Sent:* Monday, March 3, 2025\n*To:* me\n*Subject:* x\n\nOld\n", reply},
		{"outlook german", reply + "\n\nVon: Desk <d@x.de>\nGesendet: Montag, 3. März 2025 10:15\nAn: Ich\nBetreff: Ticket\n\nAlt\n", reply},
		{"outlook french", reply + "\n\nDe : Desk\nEnvoyé : lundi 3 mars 2025 10:15\nÀ : moi\nObjet : Ticket\n\nAncien\n", reply},
		{"outlook spanish", reply + "\n\nDe: Desk\nEnviado: lunes, 3 de marzo de 2025 10:15\nPara: yo\nAsunto: Ticket\n\nViejo\n", reply},
		{"outlook italian", reply + "\n\nDa: Desk\nInviato: lunedì 3 marzo 2025 10:15\nA: me\nOggetto: Ticket\n\nVecchio\n", reply},
		{"outlook dutch", reply + "\n\nVan: Desk\nVerzonden: maandag 3 maart 2025 10:15\nAan: mij\nOnderwerp: Ticket\n\nOud\n", reply},
		{"outlook swedish", reply + "\n\nFrån: Desk\nSkickat: den 3 mars 2025 10:15\nTill: mig\nÄmne: Ticket\n\nGammal\n", reply},
		{"outlook polish", reply + "\n\nOd: Desk\nWysłano: poniedziałek, 3 marca 2025 10:15\nDo: mnie\nTemat: Ticket\n\nStare\n", reply},
		{"outlook russian", reply + "\n\nОт: Desk\nОтправлено: 3 марта 2025 г. 10:15\nКому: мне\nТема: Ticket\n\nСтарое\n", reply},
		{"outlook chinese", reply + "\n\n发件人: Desk\n发送时间: 2025年3月3日 10:15\n收件人: 我\n主题: Ticket\n\n旧\n", reply},
		{"outlook japanese", reply + "\n\n差出人: Desk\n送信日時: 2025年3月3日 10:15\n宛先: 私\n件名: Ticket\n\n古い\n", reply},
		{"original message", reply + "\n\n-----Original Message-----\nFrom: Desk\nOld\n", reply},
		{"ursprüngliche nachricht", reply + "\n\n-----Ursprüngliche Nachricht-----\nVon: Desk\nAlt\n", reply},
		{"message d'origine", reply + "\n\n-------- Message d'origine --------\nDe : Desk\n", reply},
		{"signature delimiter", reply + "\n\n-- \nJane Doe\nIT\n", reply},
		{"iphone", reply + "\n\nSent from my iPhone\n\n> On 3 Mar 2025, at 10:15, Desk <d@x> wrote:\n", reply},
		{"german iphone", reply + "\n\nVon meinem iPhone gesendet\n", reply},
		{"french iphone", reply + "\n\nEnvoyé de mon iPhone\n", reply},
		{"android", reply + "\n\nSent from my Galaxy\n", reply},
		{"outlook mobile", reply + "\n\nGet Outlook for Android<https://aka.ms/ghei36>\n", reply},
		{"outlook ios", reply + "\n\nSent from Outlook for iOS<https://aka.ms/o0ukef>\n", reply},
		{"sentence is no signature", "Sent from my desk, where it is easier.\n", "Sent from my desk, where it is easier."},
		{"inline reply keeps answers", "On Tue, 1 Mar 2011, Bob <b@x> wrote:\n> question one?\n\nanswer one\n\n> question two?\n\nanswer two\n", "answer one\n\nanswer two"},
		{"thunderbird bottom post", "On 04/02/2012 06:26 PM, Megan wrote:\n> Hi\nHello\n", "Hello"},
		{"top-quoted forward falls back", "---------- Forwarded message ---------\nFrom: A <a@x>\nDate: Mon\nSubject: S\nTo: B <b@x>\n\nbody\n", "---------- Forwarded message ---------\nFrom: A <a@x>\nDate: Mon\nSubject: S\nTo: B <b@x>\n\nbody"},
		{"not an attribution", "On your remote host you can run:\n\n  telnet 127.0.0.1\n", "On your remote host you can run:\n\n  telnet 127.0.0.1"},
		{"dash in text is no signature", "A fix -- not a signature.\nBye\n", "A fix -- not a signature.\nBye"},
		{"colon sentence with address is no attribution", "On Monday the printer (ask bob@x.com) showed:\nError 42\n", "On Monday the printer (ask bob@x.com) showed:\nError 42"},
		{"wrote without date is no attribution", "Here is what I wrote:\nhello\n", "Here is what I wrote:\nhello"},
		{"regards block", "Please help.\n\nBest regards,\nJohn Doe\nCEO\n", "Please help."},
		{"thanks kept", "Please help.\n\nThanks,\nAlex\n", "Please help.\n\nThanks,\nAlex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := VisibleText(tt.in); got != tt.want {
				t.Errorf("VisibleText(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestVisibleTextHTMLReply checks that an HTML-only Gmail reply loses its quoted history through
// the blockquote rendering.
func TestVisibleTextHTMLReply(t *testing.T) {
	raw := "Content-Type: text/html; charset=utf-8\n\n" +
		`<div dir="ltr">Works now.</div><div class="gmail_quote"><div>On Mon, Mar 3, 2025 at 10:15 AM Desk &lt;<a href="mailto:d@x.com">d@x.com</a>&gt; wrote:<br></div><blockquote class="gmail_quote">Please restart it.</blockquote></div>`
	m := mustParse(t, raw)
	if m.VisibleText != "Works now." {
		t.Errorf("VisibleText = %q (Text %q)", m.VisibleText, m.Text)
	}
}

// TestVisibleTextLinear guards against super-linear behaviour on long quoted bodies.
func TestVisibleTextLinear(t *testing.T) {
	body := "reply\n\n" + strings.Repeat("> "+strings.Repeat("x", 70)+":\n", 20000) + strings.Repeat("a: b\n", 20000)
	start := time.Now()
	if got := VisibleText(body); !strings.HasPrefix(got, "reply") {
		t.Errorf("VisibleText = %.40q", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("VisibleText took %v on %d bytes", d, len(body))
	}
}
